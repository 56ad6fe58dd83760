"""Safe decoding: any file in, upright RGB pixels or a :class:`DecodeError` with a reason out.

Photo folders hold whatever people put there: half-copied files, renamed text, screenshots,
decompression bombs. Decoding is therefore defensive:

* the format is sniffed from the bytes, not the suffix (a PNG named ``.jpg`` still decodes);
* the pixel count is checked from the header, before any pixel is decoded, so a tiny file
  that claims 60000x60000 pixels costs nothing (Pillow's own bomb check also stays active);
* a cut-off file is reported as truncated, even where a decoder would quietly paint the
  missing part (libheif fills lost HEIC tiles with green);
* JPEGs are decoded at reduced scale by the decoder itself (draft mode), which is several
  times faster and smaller than decoding everything and resizing;
* EXIF orientation is applied so every consumer (model, thumbnails, quality) sees the photo
  the way the camera held it;
* colours described by an embedded ICC profile (Display P3 on iPhones, Adobe RGB, CMYK)
  are converted to sRGB, so thumbnails and the model see the colours the photographer saw.

Formats indexed: JPEG (including MPO from multi-shot cameras), PNG, WebP, TIFF and HEIF/HEIC.
Other real image formats (GIF, BMP, ICO, PSD, JPEG 2000, JPEG XL, AVIF, SVG, PNM) are
reported as ``unsupported``: they are rarely photographs (icons, animations, design files),
some have no pixel-count header we can trust, and each extra parser widens what an untrusted
file can reach.
"""

from __future__ import annotations

import codecs
import functools
import io
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from PIL import Image, ImageCms, UnidentifiedImageError

from indexer.errors import DecodeError

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif"}
)

# Pillow plugin ids we let Image.open try; every other plugin stays out of reach.
_OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "HEIF")
# Pillow reports multi-picture JPEGs as "MPO"; to users and the catalog they are JPEGs.
_FORMAT_NAMES: Mapping[str, str] = MappingProxyType({"MPO": "JPEG"})

_EXIF_ORIENTATION = 0x0112
_EXIF_SUB_IFDS = (0x8769, 0x8825)  # Exif and GPS IFDs, parsed eagerly while the file is open

# EXIF orientation -> the one transpose that makes the stored pixels display upright.
_TRANSPOSES: Mapping[int, Image.Transpose] = MappingProxyType(
    {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }
)

# Errors Pillow and its plugins raise on hostile or damaged input. Caught only around the
# calls that parse file bytes, so our own bugs still surface as bugs.
_PARSE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    struct.error,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    RuntimeError,
    MemoryError,
)

_SNIFF_BYTES = 4096
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"heif"}
)
_MAX_TOP_LEVEL_BOXES = 10_000
# How Pillow, libjpeg and libheif word "the file ends too early".
_TRUNCATION_MARKERS = ("truncat", "premature end", "end of file")


@dataclass(frozen=True)
class DecodedPhoto:
    """A photo ready for the model, thumbnails and quality measures.

    ``image`` is upright RGB, possibly reduced (short side at least ``min_side`` when the
    original allows), so callers never handle orientation, palettes or alpha themselves.
    ``width``/``height`` describe the full-resolution original as the viewer sees it (after
    orientation), because that is what users search and sort by.
    """

    image: Image.Image
    width: int
    height: int
    format: str
    exif: Image.Exif


@functools.cache
def _register_heif() -> None:
    """Teach Pillow to open HEIF/HEIC, once per process and only when decoding starts."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


def decode_photo(
    path: Path, *, min_side: int = 448, max_pixels: int = 150_000_000
) -> DecodedPhoto:
    """Decode ``path`` into an upright RGB image, refusing anything unsafe or broken.

    ``min_side`` is the short side the caller needs: the returned image keeps at least that
    (unless the original is smaller) and is reduced below twice that, by JPEG draft decoding
    or an integer box reduction, so memory per decoded photo stays small. ``min_side=0``
    keeps full resolution. Images above ``max_pixels`` are refused from their header; Pillow's
    own bomb limit (2 x ``Image.MAX_IMAGE_PIXELS``) still applies as well.

    Raises :class:`DecodeError` for every problem with the file; nothing else escapes.
    """
    try:
        fh = path.open("rb")
    except OSError as err:
        raise DecodeError("unreadable", f"cannot read file: {err.strerror or err}") from err
    with fh:
        return _decode_open_file(fh, min_side=min_side, max_pixels=max_pixels)


def _decode_open_file(fh: BinaryIO, *, min_side: int, max_pixels: int) -> DecodedPhoto:
    try:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(_SNIFF_BYTES)
        fh.seek(0)
    except OSError as err:
        raise DecodeError("unreadable", f"cannot read file: {err.strerror or err}") from err
    if not head:
        raise DecodeError("empty")
    declared = declared_length(fh, head)
    if declared is not None and declared > size:
        # Checked up front: libheif fills missing tiles of a cut-off HEIC with green
        # instead of failing, and WebP reports truncation only as a generic error.
        raise DecodeError("truncated")
    _register_heif()
    try:
        im = Image.open(fh, formats=_OPEN_FORMATS)
    except Image.DecompressionBombError as err:
        raise DecodeError("too_large", f"image too large: {err}") from err
    except UnidentifiedImageError as err:
        raise classify_unidentified(head) from err
    except _PARSE_ERRORS as err:
        raise _parse_error(err, "damaged image header") from err
    with im:
        return _decode_image(im, min_side=min_side, max_pixels=max_pixels)


def _decode_image(im: Image.Image, *, min_side: int, max_pixels: int) -> DecodedPhoto:
    fmt = _FORMAT_NAMES.get(im.format or "", im.format or "unknown")
    header_w, header_h = im.size
    if header_w * header_h > max_pixels:
        raise DecodeError(
            "too_large",
            f"image too large: {header_w}x{header_h} = {header_w * header_h:,} pixels "
            f"(limit {max_pixels:,})",
        )
    if header_w < 1 or header_h < 1:
        raise DecodeError("corrupt", f"image header claims {header_w}x{header_h} pixels")
    try:
        if fmt == "JPEG" and min_side > 0:
            im.draft("RGB", (min_side, min_side))
        im.load()
    except Image.DecompressionBombError as err:
        raise DecodeError("too_large", f"image too large: {err}") from err
    except _PARSE_ERRORS as err:
        raise _parse_error(err, "damaged image data") from err
    exif = _read_exif(im)
    # libheif already applied the container's rotation; its EXIF tag is informational only.
    orientation = 1 if fmt == "HEIF" else exif_orientation(exif)
    icc = im.info.get("icc_profile") or None
    try:
        rgb = convert_to_srgb(im, icc) if im.mode == "CMYK" and icc else None
        if rgb is None:
            rgb = to_rgb(im)
        else:
            icc = None
    except ValueError as err:
        raise DecodeError("unsupported", f"unsupported pixel format {im.mode}") from err
    except _PARSE_ERRORS as err:
        raise _parse_error(err, "damaged image data") from err
    factor = reduction_factor(rgb.size, min_side)
    if factor > 1:
        rgb = rgb.reduce(factor)
    if icc:
        rgb = convert_to_srgb(rgb, icc) or rgb
    upright = apply_orientation(rgb, orientation)
    width, height = (header_h, header_w) if orientation >= 5 else (header_w, header_h)
    return DecodedPhoto(image=upright, width=width, height=height, format=fmt, exif=exif)


def _read_exif(im: Image.Image) -> Image.Exif:
    """EXIF of the original, parsed while the file is open; broken EXIF reads as empty.

    TIFF EXIF is parsed lazily from the open file, so the sub-IFDs metadata needs are loaded
    now, before the file closes.
    """
    try:
        exif = im.getexif()
    except _PARSE_ERRORS:
        return Image.Exif()
    for ifd in _EXIF_SUB_IFDS:
        try:
            exif.get_ifd(ifd)
        except _PARSE_ERRORS:
            continue
    return exif


def declared_length(fh: BinaryIO, head: bytes) -> int | None:
    """The file length a WebP or HEIF container says it has; None for other formats.

    WebP (RIFF) states it in its header; HEIF (ISO-BMFF) is a chain of top-level boxes,
    each stating its size, so the chain's end is where the file must end.
    """
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return int.from_bytes(head[4:8], "little") + 8
    if head[4:8] != b"ftyp" or head[8:12] not in _HEIF_BRANDS:
        return None
    try:
        end = _box_chain_end(fh)
        fh.seek(0)
    except OSError as err:
        raise DecodeError("unreadable", f"cannot read file: {err.strerror or err}") from err
    return end


def _box_chain_end(fh: BinaryIO) -> int | None:
    offset = 0
    for _ in range(_MAX_TOP_LEVEL_BOXES):
        fh.seek(offset)
        header = fh.read(16)
        if not header:
            return offset
        if len(header) < 8:
            return offset + 8
        box_size = int.from_bytes(header[:4], "big")
        if box_size == 0:  # "extends to the end of the file"
            return None
        if box_size == 1:  # 64-bit size follows the type
            if len(header) < 16:
                return offset + 16
            box_size = int.from_bytes(header[8:16], "big")
        if box_size < 8:
            return None  # malformed: leave the verdict to the decoder
        offset += box_size
    return None


def _parse_error(err: BaseException, what: str) -> DecodeError:
    """Map a decoder exception to a reason; Pillow only tells truncation apart by message."""
    if isinstance(err, MemoryError):
        return DecodeError("too_large", "not enough memory to decode this image")
    text = str(err).lower()
    if isinstance(err, EOFError) or any(m in text for m in _TRUNCATION_MARKERS):
        return DecodeError("truncated")
    if "not available" in text or "unsupported" in text or "unknown raw mode" in text:
        return DecodeError("unsupported", f"unsupported image encoding ({_short(err)})")
    return DecodeError("corrupt", f"{what} ({_short(err)})")


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:120]


def exif_orientation(exif: Image.Exif) -> int:
    """The EXIF orientation (1..8); anything missing or out of range counts as upright."""
    value = exif.get(_EXIF_ORIENTATION)
    if isinstance(value, int) and 1 <= value <= 8:
        return value
    return 1


def apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """Turn pixels stored under EXIF ``orientation`` so they display upright."""
    method = _TRANSPOSES.get(orientation)
    return image if method is None else image.transpose(method)


def reduction_factor(size: tuple[int, int], min_side: int) -> int:
    """The largest integer box reduction that keeps the short side at least ``min_side``."""
    if min_side <= 0:
        return 1
    return max(1, min(size) // min_side)


def convert_to_srgb(image: Image.Image, icc: bytes) -> Image.Image | None:
    """Convert RGB or CMYK pixels described by an embedded ICC profile to sRGB.

    Thumbnails are saved without a profile and the model was trained on sRGB-looking
    pictures, so a Display P3 iPhone photo or an Adobe/Apple RGB camera JPEG would otherwise
    look washed out or too dark. Returns None when the profile is unusable or does not
    match the pixels; the caller then keeps the raw values (a bad profile never stops a
    photo from being indexed).
    """
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = profile.profile.xcolor_space.strip()
        if space != image.mode:
            return None
        # A fresh sRGB profile and transform per call: LittleCMS objects are not shared
        # between decoding threads.
        return ImageCms.profileToProfile(
            image, profile, ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    except (ImageCms.PyCMSError, *_PARSE_ERRORS):
        return None


def to_rgb(image: Image.Image) -> Image.Image:
    """Return a new RGB copy of ``image``: alpha composited on white, 16-bit scaled down.

    Every consumer (CLIP, thumbnails, pHash) expects plain RGB; white is where transparent
    pixels of a logo or scan are shown by viewers, so it keeps them recognisable.
    """
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_depth_to_rgb(image)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16/32-bit and float greyscale to 8 bits instead of clipping it to white."""
    import numpy as np

    values = np.asarray(image, dtype=np.float32)
    peak = float(values.max()) if values.size else 0.0
    if image.mode == "F" and peak <= 1.0:
        scale = 255.0
    elif peak > 255.0:
        scale = 255.0 / 65535.0 if peak <= 65535.0 else 255.0 / peak
    else:
        scale = 1.0
    grey = np.clip(values * scale, 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def classify_unidentified(head: bytes) -> DecodeError:
    """Explain bytes no supported decoder accepted, from their first few KiB.

    Pure so the rules can be tested on byte strings alone.
    """
    if not head:
        return DecodeError("empty")
    if _looks_like_supported(head):
        return DecodeError("corrupt", "damaged or incomplete image header")
    other = _other_image_format(head)
    if other is not None:
        return DecodeError("unsupported", f"unsupported image format: {other}")
    if looks_like_text(head):
        return DecodeError("text_file")
    return DecodeError("not_image")


def _looks_like_supported(head: bytes) -> bool:
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*")):
        return True
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return True
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def _other_image_format(head: bytes) -> str | None:
    """Name a well-known image format we deliberately do not index, or None."""
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith(b"BM") and len(head) >= 18:
        dib_size = int.from_bytes(head[14:18], "little")
        if dib_size in (12, 16, 40, 52, 56, 64, 108, 124):
            return "BMP"
    icon_count = int.from_bytes(head[4:6], "little")
    if head[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00") and 0 < icon_count <= 256:
        return "ICO"
    if head.startswith(b"8BPS"):
        return "PSD"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG 2000"
    if head.startswith((b"\x00\x00\x00\x0cJXL \r\n\x87\n", b"\xff\x0a")):
        return "JPEG XL"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"1234567" and head[2:3].isspace():
        return "PNM"
    text_start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    if text_start.startswith(b"<svg") or (
        text_start.startswith(b"<?xml") and b"<svg" in head.lower()
    ):
        return "SVG"
    return None


def looks_like_text(head: bytes) -> bool:
    """True when ``head`` reads as text (UTF-8, UTF-16 with BOM, or GB18030 Chinese).

    Text means: decodes cleanly and holds no control characters other than whitespace.
    Random binary data fails one of the two almost surely within a few hundred bytes.
    """
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ("utf-16",)
    else:
        candidates = ("utf-8", "gb18030")
    for encoding in candidates:
        text = _decode_prefix(head, encoding)
        if text is not None and _is_printable_text(text):
            return True
    return False


def _decode_prefix(head: bytes, encoding: str) -> str | None:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        # final=False: a multi-byte character cut at the sniff boundary is not an error.
        return decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return None


def _is_printable_text(text: str) -> bool:
    if not text.strip():
        return False
    return all(ch.isprintable() or ch.isspace() for ch in text.lstrip("\ufeff"))
