"""Everything neural and nothing about files: presets, the CLIP encoder and its errors.

Importing this package is cheap: torch and open_clip load on first use of an encoder.
"""

from models.encoder import (
    ClipEncoder,
    cached_files,
    default_precision,
    download_preset,
    load_encoder,
    model_id_for,
    save_checkpoint,
)
from models.errors import ModelError, ModelUnavailableError, UnknownPresetError
from models.presets import (
    DEFAULT_PRESET,
    MODEL_ENV_VAR,
    PRESETS,
    ModelPreset,
    get_preset,
    preset_from_env,
    preset_names,
)

__all__ = [
    "DEFAULT_PRESET",
    "MODEL_ENV_VAR",
    "PRESETS",
    "ClipEncoder",
    "ModelError",
    "ModelPreset",
    "ModelUnavailableError",
    "UnknownPresetError",
    "cached_files",
    "default_precision",
    "download_preset",
    "get_preset",
    "load_encoder",
    "model_id_for",
    "preset_from_env",
    "preset_names",
    "save_checkpoint",
]
