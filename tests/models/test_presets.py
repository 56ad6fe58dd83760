"""Presets are plain data: names, validation, the environment variable, and that each one
points at something open_clip actually knows."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from models import (
    DEFAULT_PRESET,
    MODEL_ENV_VAR,
    PRESETS,
    ModelError,
    UnknownPresetError,
    get_preset,
    preset_from_env,
    preset_names,
)

TINY_CONFIG = Path(__file__).resolve().parents[2] / "models" / "configs" / "kezhao-tiny-test.json"


def test_default_is_the_multilingual_model():
    assert DEFAULT_PRESET == "multilingual"
    preset = get_preset(DEFAULT_PRESET)
    assert (preset.arch, preset.pretrained) == ("xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k")
    assert not preset.is_test


def test_presets_by_name():
    assert preset_names() == ["english", "multilingual", "tiny-test"]
    english = get_preset("english")
    assert (english.arch, english.pretrained) == ("ViT-B-32", "laion2b_s34b_b79k")
    tiny = get_preset("tiny-test")
    assert (tiny.arch, tiny.pretrained, tiny.is_test) == ("kezhao-tiny-test", None, True)
    for name, preset in PRESETS.items():
        assert preset.name == name
        assert preset.description


def test_presets_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_preset("english").arch = "RN50"  # type: ignore[misc]
    with pytest.raises(TypeError):
        PRESETS["mine"] = get_preset("english")  # type: ignore[index]


def test_unknown_preset_lists_valid_names():
    with pytest.raises(UnknownPresetError) as caught:
        get_preset("chinese")
    message = str(caught.value)
    assert "'chinese'" in message
    for name in preset_names():
        assert name in message
    assert isinstance(caught.value, ModelError)
    assert caught.value.valid == preset_names()


def test_preset_from_env():
    assert preset_from_env({}) == DEFAULT_PRESET
    assert preset_from_env({MODEL_ENV_VAR: ""}) == DEFAULT_PRESET
    assert preset_from_env({MODEL_ENV_VAR: "english"}) == "english"
    assert preset_from_env({MODEL_ENV_VAR: " tiny-test \n"}) == "tiny-test"
    assert preset_from_env({"OTHER": "english"}) == DEFAULT_PRESET
    with pytest.raises(UnknownPresetError):
        preset_from_env({MODEL_ENV_VAR: "nope"})


def test_real_presets_name_tags_open_clip_knows():
    open_clip = pytest.importorskip("open_clip")
    for preset in PRESETS.values():
        if preset.pretrained is None:
            continue
        assert preset.arch in open_clip.list_models()
        assert preset.pretrained in open_clip.list_pretrained_tags_by_model(preset.arch)
        assert open_clip.get_pretrained_cfg(preset.arch, preset.pretrained)["hf_hub"]


def test_tiny_config_is_an_open_clip_model_config():
    config = json.loads(TINY_CONFIG.read_text())
    assert TINY_CONFIG.stem == get_preset("tiny-test").arch
    assert config["embed_dim"] == 64
    assert config["vision_cfg"]["image_size"] == 64
    assert config["text_cfg"]["vocab_size"] == 49408  # open_clip's bundled BPE tokenizer
    assert config["text_cfg"]["context_length"] == 77


def test_importing_models_loads_no_heavy_library():
    code = (
        "import sys, models; "
        "heavy = {'torch', 'open_clip', 'transformers', 'huggingface_hub'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)
