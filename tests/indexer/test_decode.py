"""Decoding real camera files and hostile ones: upright pixels out, or one clear reason."""

from __future__ import annotations

import io
import json
import pickle
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.decode import SUPPORTED_SUFFIXES, decode_photo
from indexer.errors import DECODE_REASONS, DecodeError, KezhaoError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CAMERA_JPEGS = [
    "Canon_40D.jpg",
    "Fujifilm_FinePix_E500.jpg",
    "Kodak_CX7530.jpg",
    "Nikon_D70.jpg",
    "Olympus_C8080WZ.jpg",
    "Pentax_K10D.jpg",
    "Sony_HDR-HC3.jpg",
]
BROKEN_EXIF_JPEGS = [
    "invalid/image00971.jpg",
    "invalid/image01088.jpg",
    "invalid/image01137.jpg",
    "invalid/image01551.jpg",
    "invalid/image01713.jpg",
    "invalid/image01980.jpg",
    "invalid/image02206.jpg",
    "corrupted.jpg",
]
ORIENTATIONS = range(1, 9)


@pytest.fixture
def photos() -> Path:
    folder = PROJECT_ROOT.parent / "shared" / "testdata" / "photos"
    if not folder.is_dir():
        pytest.skip("test photos not available")
    return folder


def _gradient(width: int, height: int) -> Image.Image:
    """A smooth picture with structure in both directions (compresses well, not flat)."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack(
        [np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)),
         (x + y) / 2 * np.ones((height, 1), np.float32)],
        axis=-1,
    )
    return Image.fromarray(rgb.astype(np.uint8))


def _png_claiming(width: int, height: int, rows: int = 1) -> bytes:
    """A well-formed PNG whose header claims ``width`` x ``height``, with ``rows`` of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(bytes((1 + 3 * width) * rows))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def _small_grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BILINEAR), float)


def _reason(path: Path, **kwargs: int) -> str:
    with pytest.raises(DecodeError) as caught:
        decode_photo(path, **kwargs)
    assert str(caught.value) == caught.value.message
    assert caught.value.message.strip() and "\n" not in caught.value.message
    return caught.value.reason


# --- real photos -------------------------------------------------------------------------


@pytest.mark.parametrize("name", CAMERA_JPEGS)
def test_camera_jpegs_decode_to_rgb_with_their_size_and_exif(photos: Path, name: str) -> None:
    path = photos / "jpg" / name
    decoded = decode_photo(path)
    with Image.open(path) as original:
        assert (decoded.width, decoded.height) == original.size
    assert decoded.format == "JPEG"
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (decoded.width, decoded.height)  # small: no reduction
    assert len(decoded.exif) > 0


@pytest.mark.parametrize("family", ["landscape", "portrait"])
def test_all_eight_orientations_come_out_upright(photos: Path, family: str) -> None:
    folder = photos / "jpg" / "orientation"
    decoded = [decode_photo(folder / f"{family}_{n}.jpg") for n in ORIENTATIONS]
    wide = family == "landscape"
    for photo in decoded:
        assert (photo.width > photo.height) == wide
        assert (photo.image.width > photo.image.height) == wide
        assert photo.image.size == (photo.width, photo.height)

    reference = _small_grey(decoded[0].image)
    for n, photo in zip(ORIENTATIONS, decoded, strict=True):
        diff = np.abs(_small_grey(photo.image) - reference).mean()
        assert diff < 3, f"{family}_{n} is not upright (mean difference {diff:.1f})"
    wrong = decoded[0].image.transpose(Image.Transpose.ROTATE_180)
    assert np.abs(_small_grey(wrong) - reference).mean() > 20


def test_colour_profile_is_applied(photos: Path) -> None:
    # landscape_2..8 carry Apple's "Generic RGB" (gamma 1.8) profile, landscape_1 none;
    # only after converting to sRGB do they show the same colours.
    folder = photos / "jpg" / "orientation"
    plain = np.asarray(decode_photo(folder / "landscape_1.jpg").image, float).mean()
    profiled = np.asarray(decode_photo(folder / "landscape_2.jpg").image, float).mean()
    with Image.open(folder / "landscape_2.jpg") as raw:
        assert raw.info.get("icc_profile")
        raw_mean = np.asarray(raw.convert("RGB"), float).mean()
    assert abs(profiled - plain) < 2
    assert abs(raw_mean - plain) > 8


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", BROKEN_EXIF_JPEGS)
def test_broken_metadata_does_not_stop_decoding(photos: Path, name: str) -> None:
    decoded = decode_photo(photos / "jpg" / name)
    assert decoded.image.mode == "RGB"
    assert decoded.width > 0 and decoded.height > 0
    assert np.asarray(decoded.image).std() > 1  # real picture content, not a blank


def test_heic_decodes_upright_and_reduced(photos: Path) -> None:
    decoded = decode_photo(photos / "heic" / "IMG_5195.HEIC", min_side=448)
    assert decoded.format == "HEIF"
    assert (decoded.width, decoded.height) == (2566, 3313)
    assert decoded.image.mode == "RGB"
    assert 448 <= min(decoded.image.size) < 2 * 448
    assert decoded.image.height > decoded.image.width
    assert decoded.exif.get_ifd(0x8769).get(0x9003) == "2021:04:11 15:47:53"


def test_tiff_with_alpha_decodes_to_rgb(photos: Path) -> None:
    decoded = decode_photo(photos / "tiff" / "BSG1.tiff")
    assert decoded.format == "TIFF"
    assert (decoded.width, decoded.height) == (635, 348)
    assert decoded.image.mode == "RGB"


# --- draft decoding and reduction --------------------------------------------------------


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    _gradient(4000, 3000).save(path, quality=90)
    decoded = decode_photo(path, min_side=448)
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert 448 <= decoded.image.height < 2 * 448
    assert decoded.image.size == (1000, 750)  # JPEG draft at 1/4: no full decode


def test_rotated_large_jpeg_reports_upright_full_size(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    _gradient(4000, 3000).save(path, quality=90, exif=exif)
    decoded = decode_photo(path, min_side=448)
    assert (decoded.width, decoded.height) == (3000, 4000)
    assert decoded.image.size == (750, 1000)


def test_draft_never_goes_below_the_requested_side(tmp_path: Path) -> None:
    path = tmp_path / "just_big_enough.jpg"
    _gradient(900, 500).save(path)
    assert min(decode_photo(path, min_side=448).image.size) >= 448
    assert decode_photo(path, min_side=0).image.size == (900, 500)


def test_large_png_is_reduced_but_keeps_its_colours(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    source = _gradient(2000, 1500)
    source.save(path)
    decoded = decode_photo(path, min_side=448)
    assert (decoded.width, decoded.height) == (2000, 1500)
    assert 448 <= decoded.image.height < 2 * 448
    assert decoded.image.width / decoded.image.height == pytest.approx(4 / 3, rel=0.01)
    assert np.asarray(decoded.image, float).mean() == pytest.approx(
        np.asarray(source, float).mean(), abs=2
    )


# --- formats and pixel modes -------------------------------------------------------------


def test_format_comes_from_content_not_suffix(tmp_path: Path) -> None:
    path = tmp_path / "actually_png.jpg"
    _gradient(64, 48).save(path, format="PNG")
    assert decode_photo(path).format == "PNG"


def test_multi_picture_jpeg_counts_as_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "mpo.jpg"
    first, second = Image.new("RGB", (80, 60), "red"), Image.new("RGB", (80, 60), "blue")
    first.save(path, format="MPO", save_all=True, append_images=[second])
    decoded = decode_photo(path)
    assert decoded.format == "JPEG"
    red, green, blue = decoded.image.getpixel((40, 30))
    assert red > 200 and green < 50 and blue < 50


@pytest.mark.parametrize(
    ("mode", "colour", "fmt"),
    [
        ("RGBA", (0, 0, 0, 0), "PNG"),
        ("LA", (0, 0), "PNG"),
        ("RGBA", (0, 0, 0, 0), "WEBP"),
    ],
)
def test_transparent_pixels_become_white(
    tmp_path: Path, mode: str, colour: tuple[int, ...], fmt: str
) -> None:
    path = tmp_path / f"clear.{fmt.lower()}"
    Image.new(mode, (40, 30), colour).save(path, format=fmt, lossless=True)
    assert decode_photo(path).image.getpixel((5, 5)) == (255, 255, 255)


def test_palette_transparency_becomes_white(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    image = Image.new("P", (40, 30), 0)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.save(path, transparency=0)
    assert decode_photo(path).image.getpixel((5, 5)) == (255, 255, 255)


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    ramp = np.linspace(0, 65535, 256, dtype=np.float64)
    Image.fromarray(np.tile(ramp, (16, 1)).astype(np.uint16)).save(path)
    image = decode_photo(path).image
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert image.getpixel((128, 0))[0] == pytest.approx(128, abs=2)
    assert image.getpixel((255, 0)) == (255, 255, 255)


def test_cmyk_jpeg_decodes_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (60, 40), (0, 255, 255, 0)).save(path)
    red, green, blue = decode_photo(path).image.getpixel((10, 10))
    assert red > 200 and green < 60 and blue < 60


def test_out_of_range_orientation_is_treated_as_upright(tmp_path: Path) -> None:
    path = tmp_path / "odd_tag.jpg"
    exif = Image.Exif()
    exif[0x0112] = 9
    _gradient(120, 80).save(path, exif=exif)
    decoded = decode_photo(path)
    assert (decoded.width, decoded.height) == (120, 80)
    assert decoded.image.size == (120, 80)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_garbage_exif_block_still_decodes(tmp_path: Path) -> None:
    path = tmp_path / "garbage_exif.jpg"
    bad_exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + b"\x00" * 30
    _gradient(64, 48).save(path, exif=bad_exif)
    decoded = decode_photo(path)
    assert decoded.image.size == (64, 48)
    assert isinstance(decoded.exif, Image.Exif)


# --- files that must be refused, each with its reason ------------------------------------


def test_truncated_jpeg(photos: Path, tmp_path: Path) -> None:
    data = (photos / "jpg" / "orientation" / "landscape_1.jpg").read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    assert _reason(path) == "truncated"


def test_truncated_webp(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    _gradient(300, 200).save(buffer, format="WEBP")
    path = tmp_path / "half.webp"
    path.write_bytes(buffer.getvalue()[: buffer.tell() // 2])
    assert _reason(path) == "truncated"


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.99])
def test_truncated_heic(photos: Path, tmp_path: Path, fraction: float) -> None:
    # libheif decodes a cut-off HEIC "successfully", painting the missing tiles green.
    data = (photos / "heic" / "IMG_5195.HEIC").read_bytes()
    path = tmp_path / "cut.heic"
    path.write_bytes(data[: int(len(data) * fraction)])
    assert _reason(path) == "truncated"


def test_truncated_inside_metadata(photos: Path, tmp_path: Path) -> None:
    data = (photos / "jpg" / "Canon_40D.jpg").read_bytes()  # mostly EXIF and thumbnail
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    assert _reason(path) == "truncated"


def test_refused_files_get_distinct_reasons(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.jpg"
    noise.write_bytes(random.Random(7).randbytes(4096))
    text = tmp_path / "notes.jpg"
    text.write_text("客户名单\n张三, 李四\nAcme Corp, booth 12\n" * 20, encoding="utf-8")
    gif = tmp_path / "animation.jpg"
    Image.new("RGB", (20, 20), "red").save(gif, format="GIF")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_claiming(60_000, 60_000))

    reasons = {p.name: _reason(p) for p in (empty, noise, text, gif, bomb)}
    assert reasons == {
        "empty.jpg": "empty",
        "noise.jpg": "not_image",
        "notes.jpg": "text_file",
        "animation.jpg": "unsupported",
        "bomb.png": "too_large",
    }


def test_hand_built_png_is_valid_when_it_has_its_pixels(tmp_path: Path) -> None:
    # The bomb tests rely on _png_claiming producing well-formed PNGs.
    path = tmp_path / "small.png"
    path.write_bytes(_png_claiming(8, 6, rows=6))
    assert decode_photo(path).image.size == (8, 6)


def test_unsupported_formats_are_named(tmp_path: Path) -> None:
    bmp = tmp_path / "scan.jpg"
    Image.new("RGB", (20, 20)).save(bmp, format="BMP")
    with pytest.raises(DecodeError) as caught:
        decode_photo(bmp)
    assert caught.value.reason == "unsupported"
    assert "BMP" in str(caught.value)


def test_own_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    _gradient(400, 300).save(path)
    with pytest.raises(DecodeError) as caught:
        decode_photo(path, max_pixels=100_000)
    assert caught.value.reason == "too_large"
    assert "400x300" in str(caught.value)


def test_missing_file_and_folder_are_unreadable(tmp_path: Path) -> None:
    assert _reason(tmp_path / "vanished.jpg") == "unreadable"
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    assert _reason(folder) == "unreadable"


def test_pixel_bombs_are_refused_without_allocating(tmp_path: Path) -> None:
    # Above our limit but below Pillow's own (156 M pixels), and far above both (3.6 G).
    ours = tmp_path / "ours.png"
    ours.write_bytes(_png_claiming(12_500, 12_500))
    pillows = tmp_path / "pillows.png"
    pillows.write_bytes(_png_claiming(60_000, 60_000))
    warmup = tmp_path / "warmup.png"
    warmup.write_bytes(_png_claiming(8, 6, rows=6))
    # A fresh process, so the peak-memory counter reflects only these decodes.
    script = """
import json, resource, sys, warnings
from pathlib import Path
from indexer.decode import decode_photo
from indexer.errors import DecodeError
warnings.simplefilter("ignore")
decode_photo(Path(sys.argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
reasons = []
for name in sys.argv[2:]:
    try:
        decode_photo(Path(name))
        reasons.append("decoded")
    except DecodeError as err:
        reasons.append(err.reason)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
scale = 1 if sys.platform == "darwin" else 1024
print(json.dumps({"reasons": reasons, "grown": (after - before) * scale}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(warmup), str(ours), str(pillows)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    result = json.loads(done.stdout)
    assert result["reasons"] == ["too_large", "too_large"]
    assert result["grown"] < 200 * 1024 * 1024


# --- the error type itself ---------------------------------------------------------------


def test_decode_error_is_a_kezhao_error_and_survives_pickling() -> None:
    err = DecodeError("truncated")
    assert isinstance(err, KezhaoError)
    assert str(err) == "truncated image data"
    copy = pickle.loads(pickle.dumps(DecodeError("too_large", "image too large: 9x9")))
    assert (copy.reason, copy.message, str(copy)) == ("too_large", "image too large: 9x9",
                                                       "image too large: 9x9")


def test_every_reason_has_a_message_and_unknown_reasons_are_rejected() -> None:
    assert set(DECODE_REASONS) == {
        "empty", "truncated", "corrupt", "not_image", "text_file", "too_large",
        "unsupported", "unreadable",
    }
    for reason in DECODE_REASONS:
        assert str(DecodeError(reason))
    with pytest.raises(ValueError):
        DecodeError("weird")


@pytest.mark.parametrize("suffix", sorted(SUPPORTED_SUFFIXES))
def test_every_suffix_the_scanner_picks_decodes(tmp_path: Path, suffix: str) -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF",
           ".tiff": "TIFF", ".heic": "HEIF", ".heif": "HEIF"}[suffix]
    path = tmp_path / f"photo{suffix}"
    _gradient(120, 90).save(path, format=fmt)
    decoded = decode_photo(path)
    assert (decoded.format, decoded.width, decoded.height) == (fmt, 120, 90)
    assert decoded.image.mode == "RGB"


def test_decoded_image_is_usable_after_the_file_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    _gradient(10, 10).save(path)
    decoded = decode_photo(path)
    path.unlink()
    buffer = io.BytesIO()
    decoded.image.save(buffer, format="PNG")
    assert buffer.tell() > 0
