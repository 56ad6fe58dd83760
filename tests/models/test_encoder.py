"""The encoder, offline: the tiny model's mechanics, checkpoints, precision, and the one clear
error a missing real model gives. No test here reaches the network."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from models import (
    ClipEncoder,
    ModelError,
    ModelUnavailableError,
    cached_files,
    download_preset,
    get_preset,
    load_encoder,
    model_id_for,
    save_checkpoint,
)

from .conftest import synthetic_image

ENGLISH_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
MULTILINGUAL_REPO = "laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k"


def assert_unit_rows(vectors: np.ndarray, dim: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.ndim == 2 and vectors.shape[1] == dim
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.fixture
def tiny(tmp_path: Path, no_network: None) -> ClipEncoder:
    return load_encoder("tiny-test", cache_dir=tmp_path / "models")


def test_tiny_model_loads_offline_and_describes_itself(tiny: ClipEncoder):
    assert tiny.model_id == "tiny-test:kezhao-tiny-test@seed0"
    assert tiny.model_id == model_id_for("tiny-test")
    assert tiny.preset == get_preset("tiny-test")
    assert (tiny.dim, tiny.image_size, tiny.precision) == (64, 64, "fp32")
    assert tiny.is_test


def test_image_embeddings_are_normalised_and_distinct(tiny: ClipEncoder, images):
    vectors = tiny.encode_images(images)
    assert vectors.shape == (len(images), 64)
    assert_unit_rows(vectors, 64)
    similarity = vectors @ vectors.T
    off_diagonal = similarity[~np.eye(len(images), dtype=bool)]
    assert np.all(off_diagonal < 0.9999)


def test_preprocess_then_encode_equals_encode_images(tiny: ClipEncoder, images):
    batch = torch.stack([tiny.preprocess(image) for image in images])
    assert batch.shape == (len(images), 3, 64, 64)
    np.testing.assert_allclose(tiny.encode_preprocessed(batch), tiny.encode_images(images))


def test_preprocess_is_safe_from_worker_threads(tiny: ClipEncoder):
    sources = [synthetic_image(seed, (80 + seed, 60)) for seed in range(16)]
    serial = [tiny.preprocess(image) for image in sources]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(tiny.preprocess, sources))
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a, b)


def test_texts_encode_in_chinese_and_english(tiny: ClipEncoder):
    texts = ["张三的会议照片", "a photo of a meeting", "一只猫", ""]
    vectors = tiny.encode_texts(texts)
    assert vectors.shape == (4, 64)
    assert_unit_rows(vectors, 64)
    assert float(vectors[0] @ vectors[1]) < 0.9999
    assert float(vectors[0] @ vectors[2]) < 0.9999


def test_empty_inputs_give_empty_arrays(tiny: ClipEncoder):
    assert tiny.encode_images([]).shape == (0, 64)
    assert tiny.encode_texts([]).shape == (0, 64)
    assert tiny.encode_preprocessed(torch.zeros(0, 3, 64, 64)).shape == (0, 64)


def test_text_cache_returns_the_same_vectors_and_cannot_be_corrupted(tiny: ClipEncoder):
    first = tiny.encode_texts(["猫", "dog", "猫"])
    np.testing.assert_array_equal(first[0], first[2])
    first[:] = 0  # callers own what they get back
    again = tiny.encode_texts(["dog", "猫"])
    np.testing.assert_array_equal(again, tiny.encode_texts(["dog", "猫"]))
    assert_unit_rows(again, 64)
    many = tiny.encode_texts([f"query {i}" for i in range(600)])
    assert_unit_rows(many, 64)


def test_two_loads_give_identical_embeddings_without_touching_global_rng(tmp_path, images):
    torch.manual_seed(1234)
    expected_draw = torch.rand(3)
    torch.manual_seed(1234)
    first = load_encoder("tiny-test", cache_dir=tmp_path)
    assert torch.equal(torch.rand(3), expected_draw)
    second = load_encoder("tiny-test", cache_dir=tmp_path)
    np.testing.assert_array_equal(first.encode_images(images), second.encode_images(images))
    np.testing.assert_array_equal(first.encode_texts(["猫"]), second.encode_texts(["猫"]))


def test_checkpoint_round_trip(tiny: ClipEncoder, tmp_path: Path, images):
    path = save_checkpoint(tiny, tmp_path / "tiny.pt")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    loaded = load_encoder("tiny-test", cache_dir=tmp_path / "models", checkpoint=path)
    assert loaded.model_id == f"kezhao-tiny-test@checkpoint:{digest}"
    assert loaded.model_id == model_id_for("tiny-test", path)
    np.testing.assert_array_equal(loaded.encode_images(images), tiny.encode_images(images))
    np.testing.assert_array_equal(loaded.encode_texts(["猫"]), tiny.encode_texts(["猫"]))


def test_checkpoint_weights_replace_the_random_init(tiny: ClipEncoder, tmp_path: Path, images):
    state = {key: value + 0.01 for key, value in tiny._model.state_dict().items()}
    torch.save(state, tmp_path / "changed.pt")
    changed = load_encoder("tiny-test", cache_dir=tmp_path, checkpoint=tmp_path / "changed.pt")
    assert changed.model_id != tiny.model_id
    assert not np.allclose(changed.encode_images(images), tiny.encode_images(images))


def test_bad_checkpoints_raise_model_error(tmp_path: Path, no_network: None):
    with pytest.raises(ModelError, match="not found"):
        load_encoder("tiny-test", cache_dir=tmp_path, checkpoint=tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelError, match="garbage.pt"):
        load_encoder("tiny-test", cache_dir=tmp_path, checkpoint=garbage)
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.proj": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ModelError, match="wrong.pt"):
        load_encoder("tiny-test", cache_dir=tmp_path, checkpoint=wrong)


def test_bf16_embeddings_match_fp32(tiny: ClipEncoder, tmp_path: Path, images):
    half = load_encoder("tiny-test", cache_dir=tmp_path, precision="bf16")
    assert half.precision == "bf16"
    assert half.model_id == tiny.model_id
    texts = ["张三的会议照片", "a photo of a cat"]
    for full_vectors, half_vectors in [
        (tiny.encode_images(images), half.encode_images(images)),
        (tiny.encode_texts(texts), half.encode_texts(texts)),
    ]:
        assert_unit_rows(half_vectors, 64)
        cosines = np.sum(full_vectors * half_vectors, axis=1)
        assert np.all(cosines >= 0.99), cosines


def test_unknown_precision_is_refused(tmp_path: Path):
    with pytest.raises(ModelError, match="fp32"):
        load_encoder("tiny-test", cache_dir=tmp_path, precision="fp8")


@pytest.mark.parametrize("preset", ["multilingual", "english"])
def test_missing_real_model_offline_is_one_clear_error(
    preset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
):
    pytest.importorskip("open_clip")  # imported before timing: the error itself must be quick
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "library" / "models"
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder(preset, cache_dir=folder)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"'{preset}'" in message
    assert str(folder) in message
    assert f"kezhao models download {preset}" in message
    assert "--checkpoint" in message
    assert "\n" not in message
    assert caught.value.preset == preset and caught.value.folder == folder
    assert isinstance(caught.value, ModelError)


def test_allow_download_false_never_touches_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with pytest.raises(ModelUnavailableError, match="not allowed"):
        load_encoder("english", cache_dir=tmp_path, allow_download=False)


def test_tiny_model_needs_no_files(tmp_path: Path):
    assert download_preset("tiny-test", tmp_path) == []
    assert cached_files("tiny-test", tmp_path) == []
    assert not any(tmp_path.iterdir())


def test_copied_models_folder_is_found_without_network(tmp_path: Path, hub_file, no_network):
    weights = hub_file(tmp_path, ENGLISH_REPO, "open_clip_model.safetensors")
    assert cached_files("english", tmp_path) == [weights]
    with pytest.raises(ModelUnavailableError):
        cached_files("multilingual", tmp_path)


def test_multilingual_needs_weights_and_its_text_files(tmp_path: Path, hub_file, no_network):
    weights = hub_file(tmp_path, MULTILINGUAL_REPO, "open_clip_pytorch_model.bin")
    with pytest.raises(ModelUnavailableError, match="'multilingual'"):
        cached_files("multilingual", tmp_path)  # the text config is still missing
    config = hub_file(tmp_path, "xlm-roberta-base", "config.json", b"{}")
    tokenizer = hub_file(tmp_path, "xlm-roberta-base", "tokenizer.json", b"{}")
    extra = hub_file(tmp_path, "xlm-roberta-base", "sentencepiece.bpe.model")
    assert cached_files("multilingual", tmp_path) == [weights, config, tokenizer, extra]


def test_multilingual_architecture_with_a_local_text_folder(tiny_xlmr_encoder, images):
    """The HF text tower is built from a local folder (config + tokenizer), never the hub.

    Real weights cannot be fetched in tests, so this builds the multilingual architecture
    around a tiny stand-in for xlm-roberta-base and checks the mechanics end to end.
    """
    encoder = tiny_xlmr_encoder
    assert_unit_rows(encoder.encode_texts(["一只猫", "a cat", "狗"]), 512)
    assert_unit_rows(encoder.encode_images(images[:1]), 512)
