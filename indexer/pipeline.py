"""The indexing run: folders in, catalog rows and vectors out.

Incremental by default: an unchanged (size, mtime) costs one stat; a changed or new file
is hashed first, and bytes we already know (a moved, renamed or copied photo) reuse their
vector instead of being decoded and encoded again. Only really new content is decoded,
in worker threads that overlap with the model encoding the previous batch. One bad file
is recorded with its reason and the run goes on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexer.catalog import KnownFile, PhotoRecord
from indexer.decode import decode_photo
from indexer.errors import DecodeError, KezhaoError
from indexer.library import Library
from indexer.metadata import date_from_filename, place_photo, read_camera_info
from indexer.quality import measure_quality, perceptual_hash
from indexer.scan import ScannedFile, scan_root
from indexer.tagging import suggest_after_indexing
from indexer.thumbnails import thumbnail_name, write_thumbnail
from models.encoder import torch_threads


class Encoder(Protocol):
    """What the pipeline needs from a model (models.ClipEncoder satisfies it)."""

    model_id: str
    image_size: int

    def preprocess(self, image: Any) -> Any: ...

    def encode_preprocessed(self, batch: Any) -> np.ndarray: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def finish(self) -> None: ...


class ModelMismatchError(KezhaoError):
    """The library holds vectors of another model; mixing them would give nonsense."""


@dataclass
class IndexSummary:
    new: int = 0
    changed: int = 0
    moved: int = 0
    unchanged: int = 0
    missing: int = 0
    failed: int = 0
    reused_vectors: int = 0
    encoded: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    skipped_roots: list[tuple[str, str]] = field(default_factory=list)
    photo_ids: list[int] = field(default_factory=list)

    @property
    def changed_anything(self) -> bool:
        return bool(self.new or self.changed or self.moved or self.missing)

    def as_dict(self) -> dict:
        return {
            "new": self.new,
            "changed": self.changed,
            "moved": self.moved,
            "unchanged": self.unchanged,
            "missing": self.missing,
            "failed": self.failed,
            "encoded": self.encoded,
            "reused_vectors": self.reused_vectors,
            "failures": [
                {"path": p, "reason": r, "message": m} for p, r, m in self.failures
            ],
            "skipped_roots": [{"path": p, "reason": r} for p, r in self.skipped_roots],
        }


def content_hash(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class _Prepared:
    """A decoded photo ready for the encoder, produced in a worker thread."""

    file: ScannedFile
    record: PhotoRecord | None = None
    tensor: Any = None
    error: DecodeError | None = None


@dataclass(frozen=True)
class _Candidate:
    file: ScannedFile
    known: KnownFile | None
    digest: str | None
    error: str | None = None


def _taken_at(camera_taken: datetime | None, file: ScannedFile, name_date) -> tuple[str, str]:
    if camera_taken is not None:
        return camera_taken.replace(tzinfo=None).isoformat(timespec="seconds"), "exif"
    guessed = name_date or date_from_filename(file.path.name)
    if guessed is not None:
        return guessed.isoformat() + "T00:00:00", "filename"
    mtime = datetime.fromtimestamp(file.mtime_ns / 1e9, tz=UTC).astimezone()
    return mtime.replace(tzinfo=None, microsecond=0).isoformat(), "mtime"


def _base_record(
    file: ScannedFile, root: Path, root_id: int, client: str | None, digest: str
) -> PhotoRecord:
    placement = place_photo(file.path, root, client)
    return PhotoRecord(
        path=str(file.path),
        root_id=root_id,
        size=file.size,
        mtime_ns=file.mtime_ns,
        content_hash=digest,
        client=placement.client,
        client_source=placement.client_source,
        project=placement.project,
        description=placement.description,
    )


class IndexRun:
    """One call of `index_paths`; holds the run's state so each step stays small."""

    def __init__(
        self,
        library: Library,
        encoder: Encoder,
        *,
        client: str | None,
        progress: Progress | None,
        batch_size: int,
        workers: int,
        model_threads: int | None = None,
    ) -> None:
        self.library = library
        self.catalog = library.catalog
        self.encoder = encoder
        self.client = client
        self.progress = progress
        self.batch_size = batch_size
        self.workers = workers
        self.model_threads = model_threads
        self.summary = IndexSummary()
        self._moved_ids: set[int] = set()

    # ---------------------------------------------------------------- steps
    def run(self, paths: Sequence[Path]) -> IndexSummary:
        current = self.catalog.model_id()
        if current is not None and current != self.encoder.model_id:
            raise ModelMismatchError(
                f"library {self.library.root} was indexed with model {current}; "
                f"refusing to add vectors from {self.encoder.model_id}. Use the same "
                "--model/--checkpoint, or index into a new --library."
            )
        roots = [r for r in (self._check_root(Path(p)) for p in paths) if r is not None]
        plans = [(root, root_id, list(self._scan(root))) for root, root_id in roots]
        if self.progress:
            self.progress.start(sum(len(files) for _, _, files in plans))
        try:
            for root, root_id, files in plans:
                self._index_root(root, root_id, files)
        finally:
            if self.progress:
                self.progress.finish()
        # In place: only photos whose vector or searchability changed are touched; a
        # current file costs nothing (the catalog logs changes, see vectors.py).
        self.library.vectors.sync(self.catalog)
        suggest_after_indexing(self.library, self.encoder, self.summary.photo_ids)
        return self.summary

    def _check_root(self, path: Path) -> tuple[Path, int] | None:
        root = path.expanduser()
        try:
            root = root.resolve(strict=True)
        except OSError:
            self.summary.skipped_roots.append((str(path), "not found or not reachable"))
            return None
        if not root.is_dir():
            self.summary.skipped_roots.append((str(path), "not a folder"))
            return None
        return root, self.catalog.add_root(str(root), self.client).id

    def _scan(self, root: Path) -> Iterator[ScannedFile]:
        return scan_root(root, skip=(self.library.root,))

    def _index_root(self, root: Path, root_id: int, files: list[ScannedFile]) -> None:
        known = self.catalog.known_files(root_id)
        seen: set[str] = set()
        candidates: list[tuple[ScannedFile, KnownFile | None]] = []
        for file in files:
            key = str(file.path)
            seen.add(key)
            k = known.get(key)
            if k is not None and (k.size, k.mtime_ns) == (file.size, file.mtime_ns):
                if k.status == "ok":
                    self.summary.unchanged += 1
                    self._advance()
                    continue
                if k.status == "failed":
                    self.summary.failed += 1
                    self._advance()
                    continue
            candidates.append((file, k))
        self._process(root, root_id, self._hashed(candidates))
        if not files:
            if any(k.status == "ok" for k in known.values()):
                self.summary.skipped_roots.append(
                    (str(root), "no photos found; nothing marked missing")
                )
        else:
            gone = [
                k.photo_id
                for path, k in known.items()
                if path not in seen and k.status == "ok" and k.photo_id is not None
                and k.photo_id not in self._moved_ids
            ]
            self.summary.missing += self.catalog.mark_missing(gone)
            stale_failures = [
                path for path, k in known.items() if path not in seen and k.status == "failed"
            ]
            self.catalog.forget_failures(stale_failures)
        self.catalog.mark_root_scanned(root_id)

    def _hashed(self, candidates: list[tuple[ScannedFile, KnownFile | None]]) -> Iterator[
        _Candidate
    ]:
        def digest(item: tuple[ScannedFile, KnownFile | None]) -> _Candidate:
            file, k = item
            try:
                return _Candidate(file, k, content_hash(file.path))
            except OSError as err:
                return _Candidate(file, k, None, err.strerror or "cannot read file")

        with ThreadPoolExecutor(self.workers) as pool:
            yield from pool.map(digest, candidates)

    def _process(self, root: Path, root_id: int, candidates: Iterable[_Candidate]) -> None:
        to_decode: list[tuple[_Candidate, bool]] = []
        for cand in candidates:
            if cand.digest is None:
                self._fail(cand.file, root_id, "unreadable", cand.error or "cannot read file")
                continue
            is_change = cand.known is not None and cand.known.photo_id is not None
            if is_change and self.catalog.content_hash_of(cand.known.photo_id) == cand.digest:
                self.catalog.touch_photo(cand.known.photo_id, cand.file.size, cand.file.mtime_ns)
                self.summary.unchanged += 1
                self._advance()
                continue
            if self._reuse_known_content(root, root_id, cand):
                continue
            to_decode.append((cand, is_change))
        self._decode_and_encode(root, root_id, to_decode)

    def _reuse_known_content(self, root: Path, root_id: int, cand: _Candidate) -> bool:
        """Moved or copied bytes: keep (moved) or copy (duplicate) the known vector."""
        assert cand.digest is not None
        match = self.catalog.photo_by_hash(cand.digest)
        if match is None:
            return False
        other_id, other_path, _status = match
        if other_path == str(cand.file.path):
            return False
        record = _base_record(cand.file, root, root_id, self.client, cand.digest)
        if not os.path.exists(other_path) and (
            cand.known is None or cand.known.photo_id is None
        ):
            self.catalog.move_photo(other_id, record)
            self._moved_ids.add(other_id)
            self.summary.moved += 1
            self.summary.photo_ids.append(other_id)
            self._advance()
            return True
        vector = self.catalog.embedding(other_id)
        if vector is None:
            return False
        for key, value in self.catalog.record_for_copy(other_id).items():
            setattr(record, key, value)
        if record.taken_at_source != "exif":
            record.taken_at, record.taken_at_source = _taken_at(
                None, cand.file, place_photo(cand.file.path, root, self.client).name_date
            )
        ids = self.catalog.save_photos([(record, vector)], self.encoder.model_id)
        self.summary.photo_ids.extend(ids)
        self.summary.reused_vectors += 1
        if cand.known is not None and cand.known.photo_id is not None:
            self.summary.changed += 1
        else:
            self.summary.new += 1
        self._advance()
        return True

    def _prepare(self, root: Path, root_id: int, cand: _Candidate) -> _Prepared:
        """Runs in a worker thread: everything that needs the pixels, done once."""
        file = cand.file
        try:
            # At least 384 px on the short side: quality measures look at a 512-px copy and
            # would read every photo as blurry if they had to enlarge a model-sized one.
            decoded = decode_photo(file.path, min_side=max(self.encoder.image_size, 384))
        except DecodeError as err:
            return _Prepared(file, error=err)
        try:
            assert cand.digest is not None
            record = _base_record(file, root, root_id, self.client, cand.digest)
            camera = read_camera_info(decoded.exif)
            placement = place_photo(file.path, root, self.client)
            record.taken_at, record.taken_at_source = _taken_at(
                camera.taken_at, file, placement.name_date
            )
            record.camera_make, record.camera_model = camera.make, camera.model
            record.format, record.width, record.height = (
                decoded.format, decoded.width, decoded.height,
            )
            quality = measure_quality(decoded.image)
            record.sharpness = quality.sharpness
            record.shadows_clipped = quality.shadows_clipped
            record.highlights_clipped = quality.highlights_clipped
            record.brightness = quality.brightness
            # Thumbnail, pHash (32x32 in the end) and model input need less than the
            # measures do: take them from a box-halved copy when it is still big enough.
            small = _halved(decoded.image, self.encoder.image_size)
            record.phash = perceptual_hash(small)
            name = thumbnail_name(cand.digest)
            thumb = self.library.thumbs_dir / name
            if not thumb.exists():
                write_thumbnail(small, thumb)
            record.thumbnail = name
            tensor = self.encoder.preprocess(small)
        except DecodeError as err:
            return _Prepared(file, error=err)
        except Exception as err:  # noqa: BLE001 - one odd file must never stop the run
            return _Prepared(
                file, error=DecodeError("corrupt", f"could not process image: {err}"[:200])
            )
        return _Prepared(file, record=record, tensor=tensor)

    def _decode_and_encode(
        self, root: Path, root_id: int, items: list[tuple[_Candidate, bool]]
    ) -> None:
        if not items:
            return
        changes = {str(c.file.path): is_change for c, is_change in items}
        window = max(self.batch_size * 2, self.workers * 2)
        # model_threads can cap torch during the run; on 2 cores the model on every core
        # measured best, so the default leaves torch alone (docs/performance.md).
        with torch_threads(self.model_threads), ThreadPoolExecutor(self.workers) as pool:
            pending: list[Future[_Prepared]] = []
            batch: list[_Prepared] = []
            queue = iter(items)
            for cand, _ in _take(queue, window):
                pending.append(pool.submit(self._prepare, root, root_id, cand))
            while pending:
                prepared = pending.pop(0).result()
                for cand, _ in _take(queue, 1):
                    pending.append(pool.submit(self._prepare, root, root_id, cand))
                if prepared.error is not None:
                    self._fail(prepared.file, root_id, prepared.error.reason, str(prepared.error))
                    continue
                batch.append(prepared)
                if len(batch) >= self.batch_size:
                    self._encode_batch(batch, changes)
                    batch = []
            if batch:
                self._encode_batch(batch, changes)

    def _encode_batch(self, batch: list[_Prepared], changes: dict[str, bool]) -> None:
        import torch

        vectors = self.encoder.encode_preprocessed(torch.stack([p.tensor for p in batch]))
        rows = [(p.record, vectors[i]) for i, p in enumerate(batch) if p.record is not None]
        ids = self.catalog.save_photos(rows, self.encoder.model_id)
        self.summary.photo_ids.extend(ids)
        self.summary.encoded += len(rows)
        for p in batch:
            if changes.get(str(p.file.path)):
                self.summary.changed += 1
            else:
                self.summary.new += 1
        self._advance(len(batch))

    def _fail(self, file: ScannedFile, root_id: int, reason: str, message: str) -> None:
        self.catalog.record_failure(
            str(file.path), root_id, reason, message, file.size, file.mtime_ns
        )
        self.summary.failed += 1
        self.summary.failures.append((str(file.path), reason, message))
        self._advance()

    def _advance(self, n: int = 1) -> None:
        if self.progress:
            self.progress.advance(n)


_THUMB_SIDE = 320  # write_thumbnail's default long side


def _halved(image: Any, model_side: int) -> Any:
    """``image`` reduced 2x by box averaging when the result still has a short side of at
    least ``model_side`` and a long side of at least the thumbnail's; else ``image``."""
    width, height = image.size
    if min(width, height) // 2 >= model_side and max(width, height) // 2 >= _THUMB_SIDE:
        return image.reduce(2)
    return image


def _take(iterator: Iterator, n: int) -> list:
    out = []
    for _ in range(n):
        try:
            out.append(next(iterator))
        except StopIteration:
            break
    return out


def index_paths(
    library: Library,
    encoder: Encoder,
    paths: Sequence[Path],
    *,
    client: str | None = None,
    progress: Progress | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    model_threads: int | None = None,
) -> IndexSummary:
    """Index folders of photos into the library; see the module docstring.

    ``workers`` decode in parallel with the model; ``model_threads`` caps torch's threads
    during the run (None leaves torch's setting alone). Defaults come from
    benchmarks/indexing.py on 2 cores: batches of 32 beat 16 by ~12% (fewer, larger
    model calls compete less with the decoding threads), one worker per core, and the
    model on every core beat giving it one thread (see docs/performance.md).
    """
    run = IndexRun(
        library,
        encoder,
        client=client,
        progress=progress,
        batch_size=batch_size,
        workers=workers or max(2, (os.cpu_count() or 2)),
        model_threads=model_threads,
    )
    return run.run(paths)
