"""When kezhao calls a photo blurry, dark or small: the thresholds, in one place.

The measures themselves are taken at index time (`indexer.quality`); this module only
decides what counts as poor and how to say why, so the cleanup listings and the keeper
choice among duplicates use the same words and the same numbers. Pure: no file access.

Thresholds (documented in the README, section "Cleanup"):

* **blurry** — sharpness below 30. Sharpness is the variance of the Laplacian on a grey
  copy scaled to 512 pixels on its long side, so photos of any size are comparable. Sharp
  photos usually score in the hundreds or thousands; a photo out of focus or shaken by
  about 1.5 pixels (at that scale) drops below 30. Very plain pictures (a white wall, a
  clear sky, a blank page) also score low and can show up here.
* **dark** — mean brightness below 20% of full white (0.20 on a 0..1 scale).
* **small** — fewer than 0.5 megapixels (about 800×600): too small to print or to show
  full-screen; typical of thumbnails and pictures forwarded through chat apps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from indexer.catalog import Photo

BLURRY_BELOW = 30.0
DARK_BELOW = 0.20
SMALL_BELOW_PIXELS = 500_000


@dataclass(frozen=True)
class PoorRule:
    """One kind of poor photo: the catalog measure it is judged on and its threshold.

    ``measure`` names a catalog measure ("sharpness", "brightness" or "pixels"); a photo is
    poor when its value is below ``below``; listings show the lowest value first.
    """

    kind: str
    measure: str
    below: float
    meaning: str

    def reason(self, photo: Photo, below: float | None = None) -> str:
        return describe(self.kind, photo, self.below if below is None else below)


RULES: Mapping[str, PoorRule] = MappingProxyType(
    {
        "blurry": PoorRule(
            "blurry", "sharpness", BLURRY_BELOW,
            f"sharpness below {BLURRY_BELOW:g} (out of focus or shaken)",
        ),
        "dark": PoorRule(
            "dark", "brightness", DARK_BELOW,
            f"mean brightness below {DARK_BELOW:.0%} (underexposed)",
        ),
        "small": PoorRule(
            "small", "pixels", SMALL_BELOW_PIXELS,
            f"fewer than {SMALL_BELOW_PIXELS / 1e6:g} megapixels (thumbnails, chat copies)",
        ),
    }
)


def pixels(photo: Photo) -> int:
    return int(photo.width or 0) * int(photo.height or 0)


def is_blurry(photo: Photo) -> bool:
    return photo.sharpness is not None and photo.sharpness < BLURRY_BELOW


def describe(kind: str, photo: Photo, below: float | None = None) -> str:
    """One line saying why a photo is listed under `kind`."""
    if kind == "blurry":
        limit = BLURRY_BELOW if below is None else below
        return f"blurry: sharpness {photo.sharpness or 0:.0f} (below {limit:g})"
    if kind == "dark":
        shadows = photo.shadows_clipped or 0.0
        extra = f", {shadows:.0%} of pixels black" if shadows >= 0.05 else ""
        return f"dark: brightness {photo.brightness or 0:.0%}{extra}"
    if kind == "small":
        return f"small: {photo.width}×{photo.height} ({pixels(photo) / 1e6:.2f} MP)"
    raise ValueError(f"unknown kind of poor photo {kind!r}")
