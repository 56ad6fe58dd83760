"""Sharpness, exposure and perceptual hashes behave the way duplicate cleanup relies on."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import imagehash
import pytest
from PIL import Image, ImageFilter

from indexer.decode import decode_photo
from indexer.quality import hamming, measure_quality, perceptual_hash, to_signed64

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def photos() -> Path:
    folder = PROJECT_ROOT.parent / "shared" / "testdata" / "photos"
    if not folder.is_dir():
        pytest.skip("test photos not available")
    return folder


@pytest.fixture
def waterfall(photos: Path) -> Image.Image:
    return decode_photo(photos / "jpg" / "orientation" / "landscape_1.jpg").image


def _recompressed(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as reopened:
        return reopened.convert("RGB")


def test_blurred_copy_is_much_less_sharp(waterfall: Image.Image) -> None:
    sharp = measure_quality(waterfall).sharpness
    blurred = measure_quality(waterfall.filter(ImageFilter.GaussianBlur(3))).sharpness
    assert blurred < sharp / 5


def test_sharpness_is_comparable_across_resolutions(photos: Path) -> None:
    path = photos / "jpg" / "corrupted.jpg"  # 3648x2736
    full = measure_quality(decode_photo(path, min_side=0).image).sharpness
    reduced = measure_quality(decode_photo(path, min_side=448).image).sharpness
    assert reduced == pytest.approx(full, rel=0.3)


def test_dark_photo_has_clipped_shadows(waterfall: Image.Image) -> None:
    normal = measure_quality(waterfall)
    dark = measure_quality(waterfall.point(lambda v: v // 20))
    assert dark.shadows_clipped > 0.5
    assert normal.shadows_clipped < 0.05
    assert dark.brightness < normal.brightness / 5


def test_overexposed_photo_has_clipped_highlights(waterfall: Image.Image) -> None:
    normal = measure_quality(waterfall)
    bright = measure_quality(waterfall.point(lambda v: min(255, v * 4)))
    assert bright.highlights_clipped > 0.3
    assert normal.highlights_clipped < 0.1
    assert bright.brightness > normal.brightness


def test_flat_images_measure_their_exposure() -> None:
    black = measure_quality(Image.new("RGB", (300, 200), "black"))
    white = measure_quality(Image.new("RGB", (300, 200), "white"))
    assert (black.shadows_clipped, black.brightness, black.sharpness) == (1.0, 0.0, 0.0)
    assert (white.highlights_clipped, white.brightness) == (1.0, 1.0)


def test_tiny_or_thin_images_do_not_break_measuring() -> None:
    for size in [(1, 1), (2, 700), (900, 1)]:
        measures = measure_quality(Image.new("RGB", size, "grey"))
        assert measures.sharpness == 0.0
        assert 0.0 <= measures.brightness <= 1.0


def test_copies_of_a_photo_hash_close_and_other_photos_far(photos: Path) -> None:
    original = decode_photo(photos / "jpg" / "corrupted.jpg").image
    digest = perceptual_hash(original)
    half = original.resize((original.width // 2, original.height // 2))
    copies = [half, _recompressed(original, 60), _recompressed(half, 30)]
    for copy in copies:
        assert hamming(digest, perceptual_hash(copy)) <= 6
    others = [
        photos / "jpg" / "orientation" / "landscape_1.jpg",
        photos / "jpg" / "Canon_40D.jpg",
        photos / "heic" / "IMG_5195.HEIC",
        photos / "tiff" / "BSG1.tiff",
    ]
    for other in others:
        assert hamming(digest, perceptual_hash(decode_photo(other).image)) >= 16


def test_hash_fits_sqlite_and_round_trips(waterfall: Image.Image) -> None:
    hashes = [perceptual_hash(waterfall), perceptual_hash(waterfall.rotate(90, expand=True))]
    hashes += [to_signed64(2**64 - 1), to_signed64(2**63), to_signed64(0)]
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE h (v INTEGER)")
        db.executemany("INSERT INTO h VALUES (?)", [(h,) for h in hashes])
        stored = [row[0] for row in db.execute("SELECT v FROM h ORDER BY rowid")]
    assert stored == hashes
    assert all(-(2**63) <= h < 2**63 for h in hashes)


def test_hamming_matches_imagehash_distance(photos: Path, waterfall: Image.Image) -> None:
    other = decode_photo(photos / "jpg" / "orientation" / "portrait_1.jpg").image
    expected = imagehash.phash(waterfall) - imagehash.phash(other)
    assert hamming(perceptual_hash(waterfall), perceptual_hash(other)) == expected


def test_hamming_treats_signed_and_unsigned_alike() -> None:
    assert hamming(-1, 0) == 64
    assert hamming(to_signed64(2**64 - 1), 2**64 - 1) == 0
    assert hamming(to_signed64(2**63), 0) == 1
    assert hamming(5, 5) == 0
