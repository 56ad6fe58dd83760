"""Helpers for the text-in-photos tests: real photos with rendered text, and an engine
wrapper that counts which OCR steps ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.conftest import TESTDATA, textured_image

FONT_DIRS = (Path("/usr/share/fonts/opentype/noto"), Path("/usr/share/fonts/truetype/noto"))
SC_INDEX = 2  # Simplified Chinese face inside Noto Sans CJK .ttc collections


def cjk_font(size: int) -> ImageFont.FreeTypeFont:
    for folder in FONT_DIRS:
        for path in sorted(folder.glob("NotoSansCJK-Regular.tt*")):
            return ImageFont.truetype(str(path), size, index=SC_INDEX)
    pytest.skip("needs a CJK font (Debian package fonts-noto-cjk)")


def real_photo(name: str = "Canon_40D.jpg", size: tuple[int, int] = (640, 436)) -> Image.Image:
    """A real camera photo from the shared test data, resized to a working size."""
    with Image.open(TESTDATA / "jpg" / name) as im:
        return im.convert("RGB").resize(size, Image.Resampling.BICUBIC)


def render_text(image: Image.Image, text: str, *, at=(30, 30), size=44,
                fill="black", background="white") -> Image.Image:
    """Print ``text`` on a plain panel, like a banner or a sign in a photo."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    font = cjk_font(size)
    left, top, right, bottom = draw.textbbox(at, text, font=font)
    draw.rectangle((left - 12, top - 10, right + 12, bottom + 10), fill=background)
    draw.text(at, text, font=font, fill=fill)
    return out


def text_photo(path: Path, text: str, *, base: str = "Canon_40D.jpg") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    render_text(real_photo(base), text).save(path, quality=92)
    return path


def plain_photo(path: Path, seed: int, size: tuple[int, int] = (480, 360)) -> Path:
    """A photo-like picture with no text in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    textured_image(seed, size).save(path, quality=90)
    return path


class SpyEngine:
    """Wraps an OCR engine and records how often each step ran."""

    def __init__(self, inner, model_version: str | None = None) -> None:
        self.inner = inner
        self.model_version = model_version or inner.model_version
        self.detected = 0
        self.recognised = 0

    def detect(self, image: np.ndarray):
        self.detected += 1
        return self.inner.detect(image)

    def recognise(self, regions):
        self.recognised += 1
        return self.inner.recognise(regions)
