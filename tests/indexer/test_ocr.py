"""The text-reading pass over a small library, with the real (offline) PP-OCR models.

The library is indexed with the tiny CLIP model; it only provides catalog rows here, no
semantics are involved. The OCR results are real.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from indexer.ocr import read_text, working_image
from indexer.pipeline import index_paths
from models.ocr import TextLine, TextRegions, crop_text_box, load_ocr_engine, normalise_box
from tests.ocr_helpers import SpyEngine, plain_photo, text_photo


@pytest.fixture(scope="module")
def ocr_engine():
    return load_ocr_engine()


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    text_photo(root / "张三" / "拜访" / "acme.jpg", "客户拜访 ACME")
    plain_photo(root / "张三" / "拜访" / "room.jpg", seed=1)
    return root


def _id(library, path) -> int:
    photo_id = library.catalog.photo_id_for_path(str(path))
    assert photo_id is not None
    return photo_id


def test_pass_stores_lines_with_confidence_boxes_and_model_version(
    library, tiny_encoder, ocr_engine, photos
):
    index_paths(library, tiny_encoder, [photos])
    summary = read_text(library, ocr_engine)
    assert (summary.read, summary.with_text, summary.without_text, summary.failed) == (
        2, 1, 1, 0)

    read = library.catalog.ocr_read(_id(library, photos / "张三" / "拜访" / "acme.jpg"))
    assert read.state == "text" and read.current
    assert read.model_version == ocr_engine.model_version
    assert "rapidocr" in read.model_version
    line = next(line for line in read.lines if "ACME" in line.text)
    assert "客户拜访" in line.text and line.confidence > 0.8
    # The banner sits in the top-left part of the photo; boxes are fractions of its size.
    (x0, y0), _, (x1, y1), _ = line.box
    assert 0 <= x0 < x1 <= 0.8 and 0 <= y0 < y1 <= 0.4

    room = library.catalog.ocr_read(_id(library, photos / "张三" / "拜访" / "room.jpg"))
    assert room.state == "no_text" and room.lines == ()


def test_photo_without_text_is_settled_by_detection_alone(
    library, tiny_encoder, ocr_engine, tmp_path
):
    root = tmp_path / "photos"
    plain_photo(root / "wall.jpg", seed=7)
    index_paths(library, tiny_encoder, [root])
    spy = SpyEngine(ocr_engine)
    summary = read_text(library, spy)
    assert summary.without_text == 1
    assert spy.detected == 1 and spy.recognised == 0
    assert library.catalog.ocr_read(_id(library, root / "wall.jpg")).state == "no_text"


def test_rerun_reads_nothing_and_a_changed_photo_is_read_again(
    library, tiny_encoder, ocr_engine, photos
):
    index_paths(library, tiny_encoder, [photos])
    read_text(library, ocr_engine)

    spy = SpyEngine(ocr_engine)
    again = read_text(library, spy)
    assert again.read == 0 and spy.detected == 0

    banner = photos / "张三" / "拜访" / "acme.jpg"
    text_photo(banner, "欢迎光临 2024")
    index_paths(library, tiny_encoder, [photos])
    changed = read_text(library, spy)
    assert changed.read == 1 and spy.detected == 1
    lines = [line.text for line in library.catalog.ocr_read(_id(library, banner)).lines]
    assert any("2024" in text for text in lines) and not any("ACME" in t for t in lines)
    # The old words are no longer searchable.
    from indexer.catalog import PhotoFilter

    assert library.catalog.ocr_text_candidates(["acme"], PhotoFilter()) == []


def test_another_model_version_rereads_only_when_asked(
    library, tiny_encoder, ocr_engine, photos
):
    index_paths(library, tiny_encoder, [photos])
    read_text(library, ocr_engine)
    newer = SpyEngine(ocr_engine, model_version="better-ocr 2.0")
    assert read_text(library, newer).read == 0
    assert read_text(library, newer, reread=True).read == 2
    assert library.catalog.ocr_read(1).model_version == "better-ocr 2.0"


def test_corrupt_or_huge_image_fails_for_that_photo_only(
    library, tiny_encoder, ocr_engine, tmp_path
):
    root = tmp_path / "photos"
    good = text_photo(root / "sign.jpg", "客户拜访 ACME")
    big = plain_photo(root / "scan.png", seed=3, size=(1400, 1000))
    rotten = plain_photo(root / "rotten.jpg", seed=4)
    index_paths(library, tiny_encoder, [root])

    # Bit rot after indexing: same size and time stamp, damaged header.
    stat = rotten.stat()
    data = bytearray(rotten.read_bytes())
    data[3:600] = bytes(597)
    rotten.write_bytes(bytes(data))
    os.utime(rotten, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    summary = read_text(library, ocr_engine, max_pixels=1_000_000)
    assert summary.failed == 2 and summary.with_text == 1
    failures = dict(summary.failures)
    assert failures[str(big)].startswith("too_large:") and "1,400,000" in failures[str(big)]
    assert failures[str(rotten)].startswith("corrupt:")

    stored = library.catalog.ocr_read(_id(library, big))
    assert stored.state == "failed" and stored.message == failures[str(big)]
    assert library.catalog.ocr_read(_id(library, good)).state == "text"
    assert library.catalog.ocr_state_counts() == {"failed": 2, "text": 1}

    # Failed photos wait for new content unless a retry is asked for.
    assert read_text(library, ocr_engine).read == 0
    retry = read_text(library, ocr_engine, retry_failed=True)
    assert retry.failed == 1 and retry.without_text == 1  # the big one is readable now


def test_engine_error_on_one_photo_does_not_stop_the_pass(
    library, tiny_encoder, ocr_engine, photos
):
    index_paths(library, tiny_encoder, [photos])

    class Flaky(SpyEngine):
        def detect(self, image):
            if self.detected == 0:
                self.detected += 1
                raise RuntimeError("onnxruntime: bad input shape")
            return super().detect(image)

    summary = read_text(library, Flaky(ocr_engine))
    assert summary.failed == 1 and summary.read == 1
    assert "text reading failed (onnxruntime: bad input shape)" in summary.failures[0][1]


def test_missing_trashed_and_changed_files_are_not_read(
    library, tiny_encoder, ocr_engine, photos
):
    index_paths(library, tiny_encoder, [photos])
    room = photos / "张三" / "拜访" / "room.jpg"
    banner = photos / "张三" / "拜访" / "acme.jpg"
    room.unlink()
    index_paths(library, tiny_encoder, [photos])  # room is now marked missing
    text_photo(banner, "欢迎光临")  # changed on disk, not re-indexed yet

    spy = SpyEngine(ocr_engine)
    summary = read_text(library, spy)
    assert spy.detected == 0 and summary.read == 0
    assert summary.skipped == [(str(banner), summary.skipped[0][1])]
    assert "changed since it was indexed" in summary.skipped[0][1]
    assert library.catalog.ocr_read(_id(library, banner)) is None


def test_working_image_bounds_the_long_side():
    from PIL import Image

    big = working_image(Image.new("RGB", (4000, 1000)))
    assert big.shape == (400, 1600, 3) and big.dtype == np.uint8
    small = working_image(Image.new("L", (300, 200)))
    assert small.shape == (200, 300, 3)


def test_crop_straightens_a_tilted_box_and_boxes_are_fractions():
    image = np.zeros((100, 200, 3), np.uint8)
    box = np.array([[10, 20], [110, 30], [108, 60], [8, 50]], np.float32)
    strip = crop_text_box(image, box)
    assert strip.shape[1] > strip.shape[0]  # a horizontal strip
    tall = crop_text_box(image, np.array([[0, 0], [10, 0], [10, 60], [0, 60]], np.float32))
    assert tall.shape[1] > tall.shape[0]  # vertical writing is turned on its side
    assert normalise_box(box, 200, 100)[0] == (0.05, 0.2)
    assert TextRegions(image).empty and TextLine("a", 0.9, ()).text == "a"
