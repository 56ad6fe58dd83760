"""Numbers that tell a good copy of a photo from a worse one, plus a perceptual hash.

Used to pick the keeper among near-duplicates (sharper, better exposed wins) and to find
those duplicates cheaply. Pure functions of a PIL image; no file access.
"""

from __future__ import annotations

from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

# Measures are taken on a copy with this long side so that a 50 MP original and its
# 2 MP export get comparable numbers.
_MEASURE_LONG_SIDE = 512
_SHADOW_LEVEL = 5
_HIGHLIGHT_LEVEL = 250
_HASH_BITS = 64
_HASH_MASK = (1 << _HASH_BITS) - 1


@dataclass(frozen=True)
class QualityMeasures:
    """Sharpness and exposure of a photo.

    ``sharpness`` is the variance of the Laplacian (higher is sharper; blur and missed focus
    drive it towards 0). ``shadows_clipped``/``highlights_clipped`` are the fractions of
    pixels crushed to black or blown to white, ``brightness`` the mean level in 0..1.
    """

    sharpness: float
    shadows_clipped: float
    highlights_clipped: float
    brightness: float


def measure_quality(image: Image.Image) -> QualityMeasures:
    """Measure sharpness and exposure on a greyscale copy with a fixed long side."""
    grey = np.asarray(_normalised_grey(image), dtype=np.float32)
    total = grey.size
    return QualityMeasures(
        sharpness=_laplacian_variance(grey),
        shadows_clipped=float(np.count_nonzero(grey <= _SHADOW_LEVEL)) / total,
        highlights_clipped=float(np.count_nonzero(grey >= _HIGHLIGHT_LEVEL)) / total,
        brightness=float(grey.mean()) / 255.0,
    )


def _normalised_grey(image: Image.Image) -> Image.Image:
    grey = image.convert("L")
    width, height = grey.size
    scale = _MEASURE_LONG_SIDE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return grey.resize(size, Image.Resampling.BILINEAR)


def _laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: edges and texture give large responses."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    centre = grey[1:-1, 1:-1]
    laplacian = (
        grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * centre
    )
    return float(laplacian.var())


def perceptual_hash(image: Image.Image) -> int:
    """64-bit pHash as a signed integer, so SQLite's INTEGER column can store it.

    Resized, re-compressed or lightly edited copies land a few bits apart; compare with
    :func:`hamming`.
    """
    bits = imagehash.phash(image).hash.flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bool(bit))
    return to_signed64(value)


def to_signed64(value: int) -> int:
    """Reinterpret an unsigned 64-bit value as two's-complement signed."""
    value &= _HASH_MASK
    return value - (1 << _HASH_BITS) if value >= 1 << (_HASH_BITS - 1) else value


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned alike)."""
    return ((a ^ b) & _HASH_MASK).bit_count()
