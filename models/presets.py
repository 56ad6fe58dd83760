"""Named model presets: which open_clip architecture and weights a library uses.

A preset is the unit a user picks (``--model``, ``KEZHAO_MODEL``) and the catalog records,
so presets are plain frozen data with no dependency on torch or open_clip: the CLI can list
and validate them without loading anything heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from models.errors import UnknownPresetError

MODEL_ENV_VAR = "KEZHAO_MODEL"
DEFAULT_PRESET = "multilingual"


@dataclass(frozen=True)
class ModelPreset:
    """An open_clip architecture plus the weights to put in it.

    ``pretrained`` is an open_clip pretrained tag (resolved to a Hugging Face Hub file) or
    ``None`` for a randomly initialised model. ``is_test`` marks models whose embeddings carry
    no meaning, so callers can warn before a user indexes real photos with them.
    """

    name: str
    arch: str
    pretrained: str | None
    description: str
    is_test: bool = False


PRESETS: Mapping[str, ModelPreset] = MappingProxyType(
    {
        "multilingual": ModelPreset(
            name="multilingual",
            arch="xlm-roberta-base-ViT-B-32",
            pretrained="laion5b_s13b_b90k",
            description="Chinese and English queries and tags (default; needs `transformers`).",
        ),
        "english": ModelPreset(
            name="english",
            arch="ViT-B-32",
            pretrained="laion2b_s34b_b79k",
            description="Faster, English-only queries and tags.",
        ),
        "tiny-test": ModelPreset(
            name="tiny-test",
            arch="kezhao-tiny-test",
            pretrained=None,
            description=(
                "Tiny randomly initialised model (fixed seed) for tests and demos of the "
                "mechanics; its embeddings have no meaning."
            ),
            is_test=True,
        ),
    }
)


def preset_names() -> list[str]:
    """Valid preset names, sorted, for help texts and error messages."""
    return sorted(PRESETS)


def get_preset(name: str) -> ModelPreset:
    """Look a preset up by name; a typo gets an error listing the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownPresetError(name, preset_names()) from None


def preset_from_env(environ: Mapping[str, str]) -> str:
    """The preset named by ``KEZHAO_MODEL`` in ``environ``, else the default.

    Takes the environment as an argument so settings are built from one explicit mapping and
    tests never have to touch ``os.environ``. The name is validated here so a bad variable
    fails at start-up rather than at the first query.
    """
    name = environ.get(MODEL_ENV_VAR, "").strip() or DEFAULT_PRESET
    get_preset(name)
    return name
