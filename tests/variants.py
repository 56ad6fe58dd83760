"""Copies of a photo the way people make them (resized, re-compressed, cropped, brightened,
re-saved as PNG, blurred), for the duplicate and trash tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter

from tests.conftest import textured_image

VARIANTS = ("half", "q60", "crop5", "bright", "png", "blurred")


def camera_exif(make: str = "Canon", model: str = "EOS 40D", taken: str | None = None
                ) -> bytes:
    """EXIF as a camera writes it; `taken` is a capture time like '2024:05:01 10:00:00'."""
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    return exif.tobytes()


def save_original(
    path: Path, seed: int, size: tuple[int, int] = (640, 480), taken: str | None = None
) -> Path:
    """A camera original: JPEG quality 95 carrying the camera's make and model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    textured_image(seed, size).save(path, quality=95, exif=camera_exif(taken=taken))
    return path


def save_burst_frame(original: Path, dest: Path, taken: str) -> Path:
    """The next frame of a burst: the same scene with one small part changed, its own
    capture time."""
    with Image.open(original) as im:
        frame = im.convert("RGB")
    w, h = frame.size
    box = (w // 3, h // 3, w // 3 + w // 10, h // 3 + h // 10)
    frame.paste(ImageEnhance.Brightness(frame.crop(box)).enhance(1.6), box[:2])
    frame.save(dest, quality=95, exif=camera_exif(taken=taken))
    return dest


def save_variant(original: Path, kind: str, dest_dir: Path, stem: str | None = None) -> Path:
    """One derived copy of `original`; like most editors and chat apps, it drops EXIF
    (except the blurred copy, which keeps it: it must lose on sharpness alone)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or f"{original.stem}_{kind}"
    with Image.open(original) as im:
        im = im.convert("RGB")
        w, h = im.size
        if kind == "half":
            out, ext, kw = im.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "jpg", {}
        elif kind == "q60":
            out, ext, kw = im, "jpg", {"quality": 60}
        elif kind == "crop5":
            dx, dy = round(w * 0.025), round(h * 0.025)
            out, ext, kw = im.crop((dx, dy, w - dx, h - dy)), "jpg", {"quality": 90}
        elif kind == "bright":
            out, ext, kw = ImageEnhance.Brightness(im).enhance(1.1), "jpg", {"quality": 90}
        elif kind == "png":
            out, ext, kw = im, "png", {}
        elif kind == "blurred":
            out, ext = im.filter(ImageFilter.GaussianBlur(3)), "jpg"
            kw = {"quality": 95, "exif": camera_exif()}
        elif kind == "exact":
            dest = dest_dir / f"{stem}{original.suffix}"
            shutil.copyfile(original, dest)
            return dest
        else:
            raise ValueError(kind)
        dest = dest_dir / f"{stem}.{ext}"
        out.save(dest, **kw)
    return dest
