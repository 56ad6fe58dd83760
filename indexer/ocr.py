"""The text-reading pass: catalogued photos in, lines of text with boxes out.

Separate from indexing on purpose: reading text costs far more than embedding a photo, so
it never slows `kezhao index` down and can run later (`kezhao ocr`, or `kezhao index
--ocr`). It is resumable the same way indexing is incremental: a photo is read once per
content hash and model version, each result is committed as soon as it is known, so an
interrupted pass loses at most the photo it was reading.

Per photo the work is bounded: decoding refuses images above ``max_pixels`` from their
header and decodes JPEGs at reduced scale; the working image is at most ``OCR_MAX_SIDE``
pixels on its long side; at most ``models.ocr.MAX_LINES`` lines are recognised. A photo in
which the detector finds nothing is settled by detection alone. A file that cannot be read
is recorded as failed with its reason and the pass goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.decode import decode_photo
from indexer.errors import DecodeError
from indexer.library import Library
from indexer.ocr_records import OcrLineRecord, OcrTask
from indexer.pipeline import Progress
from models.errors import ModelError
from models.ocr import OcrEngine

OCR_MIN_SIDE = 1024
"""Short side asked of the decoder: small print on a card or banner stays legible."""
OCR_MAX_SIDE = 1600
"""Long side of the working image: bounds detector time and memory per photo."""
OCR_MAX_PIXELS = 100_000_000
"""Larger images (giant scans, stitched panoramas) are not read: decoding them costs
hundreds of MB and their text would be unreadably small at the working size anyway."""
PREFETCH = 2


@dataclass
class OcrSummary:
    """What one pass did; ``failures`` and ``skipped`` hold (path, message) pairs."""

    model_version: str
    read: int = 0
    with_text: int = 0
    without_text: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "model_version": self.model_version,
            "read": self.read,
            "with_text": self.with_text,
            "without_text": self.without_text,
            "failed": self.failed,
            "skipped": len(self.skipped),
            "failures": [{"path": p, "message": m} for p, m in self.failures],
            "skipped_photos": [{"path": p, "message": m} for p, m in self.skipped],
        }


@dataclass(frozen=True)
class _Loaded:
    """A photo ready for the engine, or why it is not (decoded in a worker thread)."""

    task: OcrTask
    pixels: np.ndarray | None = None
    failure: str | None = None
    skip: str | None = None


def working_image(image: Image.Image, max_side: int = OCR_MAX_SIDE) -> np.ndarray:
    """An RGB uint8 array of ``image`` with its long side at most ``max_side``."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    longest = max(rgb.size)
    if longest > max_side:
        scale = max_side / longest
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(rgb, dtype=np.uint8)


def read_pixels(engine: OcrEngine, pixels: np.ndarray) -> list[OcrLineRecord]:
    """Detect, and only where text was detected, recognise; returns the lines read."""
    regions = engine.detect(pixels)
    if regions.empty:
        return []
    return [
        OcrLineRecord(line.text, line.confidence, line.box) for line in engine.recognise(regions)
    ]


def file_changed(task: OcrTask) -> str | None:
    """Why the file no longer matches what was indexed, or None when it does.

    Text read from other bytes than the catalogued ones would be filed under the wrong
    content hash, so such photos wait for the next `kezhao index`.
    """
    try:
        stat = os.stat(task.path)
    except FileNotFoundError:
        return "file is missing; run `kezhao index` on its folder to update the catalog"
    except OSError as err:
        return f"cannot read file: {err.strerror or err}"
    if (stat.st_size, stat.st_mtime_ns) != (task.size, task.mtime_ns):
        return "file changed since it was indexed; run `kezhao index` on its folder first"
    return None


class OcrRun:
    """One call of :func:`read_text`, holding its state so each step stays small."""

    def __init__(
        self, library: Library, engine: OcrEngine, *, progress: Progress | None,
        max_pixels: int, max_side: int,
    ) -> None:
        self.catalog = library.catalog
        self.engine = engine
        self.progress = progress
        self.max_pixels = max_pixels
        self.max_side = max_side
        self.summary = OcrSummary(model_version=engine.model_version)

    def run(self, tasks: Sequence[OcrTask]) -> OcrSummary:
        if self.progress:
            self.progress.start(len(tasks))
        try:
            for loaded in self._loaded(tasks):
                self._read(loaded)
                if self.progress:
                    self.progress.advance()
        finally:
            if self.progress:
                self.progress.finish()
        return self.summary

    def _loaded(self, tasks: Sequence[OcrTask]) -> Iterator[_Loaded]:
        """Decode the next photos in a worker thread while the engine reads this one."""
        with ThreadPoolExecutor(1) as pool:
            queue = iter(tasks)
            pending: list[Future[_Loaded]] = [
                pool.submit(self._load, task) for task in islice(queue, PREFETCH)
            ]
            while pending:
                loaded = pending.pop(0).result()
                pending.extend(pool.submit(self._load, task) for task in islice(queue, 1))
                yield loaded

    def _load(self, task: OcrTask) -> _Loaded:
        changed = file_changed(task)
        if changed is not None:
            return _Loaded(task, skip=changed)
        try:
            decoded = decode_photo(
                Path(task.path), min_side=OCR_MIN_SIDE, max_pixels=self.max_pixels
            )
            return _Loaded(task, pixels=working_image(decoded.image, self.max_side))
        except DecodeError as err:
            return _Loaded(task, failure=f"{err.reason}: {err.message}")
        except MemoryError:
            return _Loaded(task, failure="too_large: not enough memory to decode this image")

    def _read(self, loaded: _Loaded) -> None:
        task = loaded.task
        if loaded.skip is not None:
            self.summary.skipped.append((task.path, loaded.skip))
            return
        if loaded.failure is not None:
            self._fail(task, loaded.failure)
            return
        assert loaded.pixels is not None
        try:
            lines = read_pixels(self.engine, loaded.pixels)
        except ModelError:
            raise  # the engine itself is unusable: every photo would fail the same way
        except Exception as err:  # noqa: BLE001 - one odd photo must never stop the pass
            self._fail(task, f"unreadable: text reading failed ({_short(err)})")
            return
        state = "text" if lines else "no_text"
        self.catalog.save_ocr_read(
            task.photo_id, task.content_hash, self.engine.model_version, state, lines
        )
        self.summary.read += 1
        if lines:
            self.summary.with_text += 1
        else:
            self.summary.without_text += 1

    def _fail(self, task: OcrTask, message: str) -> None:
        self.catalog.save_ocr_read(
            task.photo_id, task.content_hash, self.engine.model_version, "failed",
            message=message,
        )
        self.summary.failed += 1
        self.summary.failures.append((task.path, message))


def _short(err: BaseException) -> str:
    return (" ".join(str(err).split()) or type(err).__name__)[:160]


def read_text(
    library: Library,
    engine: OcrEngine,
    *,
    progress: Progress | None = None,
    reread: bool = False,
    retry_failed: bool = False,
    max_pixels: int = OCR_MAX_PIXELS,
    max_side: int = OCR_MAX_SIDE,
) -> OcrSummary:
    """Read the text in every photo that needs it; see the module docstring.

    ``reread`` also reads photos read by another model version; ``retry_failed`` tries
    failed photos again (otherwise they wait until their content changes). ``max_pixels``
    and ``max_side`` bound the work per photo (see the module constants).
    """
    tasks = library.catalog.photos_needing_ocr(
        engine.model_version, reread=reread, retry_failed=retry_failed
    )
    run = OcrRun(
        library, engine, progress=progress, max_pixels=max_pixels, max_side=max_side
    )
    return run.run(tasks)
