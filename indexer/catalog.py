"""The catalog: every SQL statement kezhao runs lives in this module.

catalog.db is the source of truth (embeddings included); everything else in the library
folder can be rebuilt from it. Other modules call the verbs here and never write SQL, so a
schema change touches one file and every query stays parameterised.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
from sqlite_utils import Database

from indexer.errors import KezhaoError
from indexer.ocr_records import (
    OcrLineRecord,
    OcrRead,
    OcrTask,
    decode_box,
    encode_box,
    escape_like,
    fts_phrase,
)
from indexer.schema import build_migrations
from indexer.tag_records import (
    ExportRow,
    LibraryCalibration,
    PendingCount,
    StoredTagModel,
    Suggestion,
    TagCalibrationRow,
    TagRow,
    TagState,
    TagVectorRow,
)
from indexer.vector_records import VectorChanges

BUSY_TIMEOUT_MS = 30_000


class CatalogError(KezhaoError):
    """A catalog request that cannot be honoured (unknown photo, bad value)."""


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Root:
    id: int
    path: str
    client: str | None
    last_scan_at: str | None


@dataclass(frozen=True)
class KnownFile:
    """What the catalog remembers of a path, enough to skip it without opening it."""

    photo_id: int | None
    size: int
    mtime_ns: int
    status: str  # ok | missing | trashed | failed


@dataclass
class PhotoRecord:
    """Everything the indexer learned about one file, ready to be written."""

    path: str
    root_id: int | None
    size: int
    mtime_ns: int
    content_hash: str
    format: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    taken_at_source: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    client: str | None = None
    client_source: str | None = None
    project: str | None = None
    description: str | None = None
    sharpness: float | None = None
    shadows_clipped: float | None = None
    highlights_clipped: float | None = None
    brightness: float | None = None
    phash: int | None = None
    thumbnail: str | None = None


@dataclass(frozen=True)
class Photo:
    """A photo as listings and search results show it."""

    id: int
    path: str
    client: str | None
    client_source: str | None
    project: str | None
    description: str | None
    taken_at: str | None
    taken_at_source: str | None
    camera_make: str | None
    camera_model: str | None
    width: int | None
    height: int | None
    format: str | None
    size: int
    content_hash: str
    sharpness: float | None
    shadows_clipped: float | None
    highlights_clipped: float | None
    brightness: float | None
    phash: int | None
    thumbnail: str | None
    status: str
    tags: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class PhotoFilter:
    """The filters every search and listing accepts; None means 'any'."""

    client: str | None = None
    project: str | None = None
    tag: str | None = None
    since: date | None = None
    until: date | None = None
    photo_ids: tuple[int, ...] | None = None

    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (self.client, self.project, self.tag, self.since, self.until, self.photo_ids)
        )


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str
    message: str
    recorded_at: str


@dataclass(frozen=True)
class ClientCount:
    name: str
    photos: int


_PHOTO_COLUMNS = (
    "p.id, p.path, c.name AS client, p.client_source, p.project, p.description, p.taken_at, "
    "p.taken_at_source, p.camera_make, p.camera_model, p.width, p.height, p.format, p.size, "
    "p.content_hash, p.sharpness, p.shadows_clipped, p.highlights_clipped, p.brightness, "
    "p.phash, p.thumbnail, p.status"
)
_PHOTO_FROM = "photos p LEFT JOIN clients c ON c.id = p.client_id"


_IDS_CACHE_SIZE = 16  # filters whose matching photo ids are kept (see photo_ids_matching)


def _photo_from_row(row: sqlite3.Row | tuple, tags: tuple[str, ...] = ()) -> Photo:
    return Photo(*row, tags=tags)


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


class Catalog:
    """One open catalog.db. Thread-safe: a lock serialises access to the connection,
    because the web app calls in from worker threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._conn = conn
        self.db = Database(conn)
        self._lock = threading.RLock()
        self._ids_cache: dict[PhotoFilter, tuple[tuple, np.ndarray]] = {}
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.db.enable_wal()
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA synchronous = NORMAL")
        build_migrations().apply(self.db)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Catalog]:
        """Group several writes so they land together or not at all."""
        with self._lock, self.db.atomic():
            yield self

    def _rows(self, sql: str, params: Sequence | dict = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence | dict = ()) -> tuple | None:
        with self._lock:
            return self._conn.execute(sql, params).fetchone()

    def _write(self, sql: str, params: Sequence | dict = ()) -> sqlite3.Cursor:
        with self._lock:
            return self.db.execute(sql, params)

    def _write_many(self, sql: str, rows: Iterable[Sequence]) -> None:
        with self._lock, self.db.atomic():
            self._conn.executemany(sql, rows)

    # ---------------------------------------------------------------- meta
    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._write(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def model_id(self) -> str | None:
        return self.get_meta("model_id")

    def vectors_generation(self) -> int:
        """The high-water mark of vector changes: it moves whenever the set of searchable
        vectors may have changed (kept by triggers, see schema 0006_vector_changes)."""
        row = self._one("SELECT COALESCE(MAX(seq), 0) FROM vector_changes")
        return int(row[0]) if row else 0

    def bump_vectors_generation(self) -> int:
        """Ask for a full rebuild of the vector index (photo id 0 stands for 'all')."""
        with self.transaction():
            self._write(
                "INSERT INTO vector_changes(photo_id, seq) VALUES (0, (SELECT COALESCE("
                "MAX(seq), 0) + 1 FROM vector_changes)) ON CONFLICT(photo_id) DO UPDATE "
                "SET seq = excluded.seq"
            )
            return self.vectors_generation()

    def schema_migrations(self) -> list[str]:
        return [m.name for m in build_migrations().applied(self.db)]

    # --------------------------------------------------------------- roots
    def add_root(self, path: str, client: str | None = None) -> Root:
        with self.transaction():
            self._write(
                "INSERT INTO roots(path, client, added_at) VALUES (?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET client = COALESCE(excluded.client, client)",
                (path, client, now_iso()),
            )
            row = self._one(
                "SELECT id, path, client, last_scan_at FROM roots WHERE path = ?", (path,)
            )
        assert row is not None
        return Root(*row)

    def roots(self) -> list[Root]:
        return [
            Root(*r) for r in self._rows("SELECT id, path, client, last_scan_at FROM roots")
        ]

    def mark_root_scanned(self, root_id: int) -> None:
        self._write("UPDATE roots SET last_scan_at = ? WHERE id = ?", (now_iso(), root_id))

    # ------------------------------------------------------------- clients
    def _client_id(self, name: str | None, *, create: bool) -> int | None:
        if not name:
            return None
        row = self._one("SELECT id FROM clients WHERE name = ?", (name,))
        if row:
            return row[0]
        if not create:
            return None
        return self._write("INSERT INTO clients(name) VALUES (?)", (name,)).lastrowid

    def clients(self) -> list[ClientCount]:
        rows = self._rows(
            "SELECT c.name, COUNT(p.id) FROM clients c "
            "JOIN photos p ON p.client_id = c.id AND p.status = 'ok' "
            "GROUP BY c.id ORDER BY COUNT(p.id) DESC, c.name"
        )
        return [ClientCount(name, count) for name, count in rows]

    def client_exists(self, name: str) -> bool:
        return self._client_id(name, create=False) is not None

    def set_client(self, photo_ids: Sequence[int], client: str | None) -> int:
        """Correct the client of photos by hand; the manual source is remembered."""
        with self.transaction():
            client_id = self._client_id(client, create=True)
            changed = 0
            for photo_id in photo_ids:
                cur = self._write(
                    "UPDATE photos SET client_id = ?, client_source = 'manual' WHERE id = ?",
                    (client_id, photo_id),
                )
                changed += cur.rowcount
        return changed

    # -------------------------------------------------------------- photos
    def known_files(self, root_id: int) -> dict[str, KnownFile]:
        """Paths under a root with what we know of them, for the incremental scan."""
        known: dict[str, KnownFile] = {}
        for photo_id, path, size, mtime_ns, status in self._rows(
            "SELECT id, path, size, mtime_ns, status FROM photos WHERE root_id = ?", (root_id,)
        ):
            known[path] = KnownFile(photo_id, size, mtime_ns, status)
        for path, size, mtime_ns in self._rows(
            "SELECT path, size, mtime_ns FROM failures WHERE root_id = ?", (root_id,)
        ):
            known.setdefault(path, KnownFile(None, size or -1, mtime_ns or -1, "failed"))
        return known

    def photo_by_hash(self, content_hash: str) -> tuple[int, str, str] | None:
        """A catalogued, non-trashed photo with this content: (id, path, status)."""
        row = self._one(
            "SELECT id, path, status FROM photos WHERE content_hash = ? AND status != 'trashed' "
            "ORDER BY status = 'ok' DESC, id LIMIT 1",
            (content_hash,),
        )
        return (row[0], row[1], row[2]) if row else None

    def record_for_copy(self, photo_id: int) -> dict:
        """Decode-derived columns of a photo, to give an identical copy without decoding."""
        row = self._one(
            "SELECT format, width, height, taken_at, taken_at_source, camera_make, "
            "camera_model, sharpness, shadows_clipped, highlights_clipped, brightness, phash, "
            "thumbnail FROM photos WHERE id = ?",
            (photo_id,),
        )
        if row is None:
            raise CatalogError(f"no photo with id {photo_id}")
        keys = (
            "format", "width", "height", "taken_at", "taken_at_source", "camera_make",
            "camera_model", "sharpness", "shadows_clipped", "highlights_clipped", "brightness",
            "phash", "thumbnail",
        )
        return dict(zip(keys, row, strict=True))

    def embedding(self, photo_id: int) -> np.ndarray | None:
        row = self._one("SELECT vector FROM embeddings WHERE photo_id = ?", (photo_id,))
        return blob_to_vector(row[0]).copy() if row else None

    def save_photos(
        self, records: Sequence[tuple[PhotoRecord, np.ndarray]], model_id: str
    ) -> list[int]:
        """Insert or update photos (matched by path) with their embeddings, in one
        transaction, so a crash never leaves a photo without its vector."""
        ids: list[int] = []
        stamp = now_iso()
        with self.transaction():
            self._claim_model(model_id)
            for record, vector in records:
                client_id = self._client_id(record.client, create=True)
                values = {
                    "path": record.path,
                    "root_id": record.root_id,
                    "size": record.size,
                    "mtime_ns": record.mtime_ns,
                    "content_hash": record.content_hash,
                    "format": record.format,
                    "width": record.width,
                    "height": record.height,
                    "taken_at": record.taken_at,
                    "taken_at_source": record.taken_at_source,
                    "camera_make": record.camera_make,
                    "camera_model": record.camera_model,
                    "client_id": client_id,
                    "client_source": record.client_source,
                    "project": record.project,
                    "description": record.description,
                    "sharpness": record.sharpness,
                    "shadows_clipped": record.shadows_clipped,
                    "highlights_clipped": record.highlights_clipped,
                    "brightness": record.brightness,
                    "phash": record.phash,
                    "thumbnail": record.thumbnail,
                    "indexed_at": stamp,
                }
                existing = self._one("SELECT id, client_source FROM photos WHERE path = ?",
                                     (record.path,))
                if existing is None:
                    cols = ", ".join(values)
                    marks = ", ".join(f":{k}" for k in values)
                    photo_id = self._write(
                        f"INSERT INTO photos({cols}) VALUES ({marks})", values
                    ).lastrowid
                else:
                    photo_id = existing[0]
                    if existing[1] == "manual":
                        # A client the user set by hand survives re-indexing.
                        values.pop("client_id")
                        values.pop("client_source")
                    sets = ", ".join(f"{k} = :{k}" for k in values)
                    self._write(
                        f"UPDATE photos SET {sets}, status = 'ok', missing_since = NULL "
                        "WHERE id = :id",
                        {**values, "id": photo_id},
                    )
                self._write(
                    "INSERT INTO embeddings(photo_id, model_id, dim, vector) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(photo_id) DO UPDATE SET model_id = excluded.model_id, "
                    "dim = excluded.dim, vector = excluded.vector",
                    (photo_id, model_id, int(vector.shape[-1]), vector_to_blob(vector)),
                )
                self._write("DELETE FROM failures WHERE path = ?", (record.path,))
                ids.append(photo_id)
        return ids

    def _claim_model(self, model_id: str) -> None:
        current = self.model_id()
        if current is None:
            self.set_meta("model_id", model_id)
        elif current != model_id:
            raise CatalogError(
                f"this library was indexed with model {current!r}, not {model_id!r}; "
                "use that model, or re-index into a new library"
            )

    def move_photo(self, photo_id: int, record: PhotoRecord) -> None:
        """A known file seen at a new path: keep its id, vector, tags and decisions."""
        with self.transaction():
            client_id = self._client_id(record.client, create=True)
            manual = self._one(
                "SELECT client_source = 'manual' FROM photos WHERE id = ?", (photo_id,)
            )
            client_sql = "" if manual and manual[0] else "client_id = ?, client_source = ?, "
            client_params: tuple = () if client_sql == "" else (client_id, record.client_source)
            self._write(
                "UPDATE photos SET path = ?, root_id = ?, size = ?, mtime_ns = ?, "
                f"{client_sql}project = ?, description = ?, status = 'ok', "
                "missing_since = NULL, indexed_at = ? WHERE id = ?",
                (record.path, record.root_id, record.size, record.mtime_ns, *client_params,
                 record.project, record.description, now_iso(), photo_id),
            )
            self._write("DELETE FROM failures WHERE path = ?", (record.path,))

    def touch_photo(self, photo_id: int, size: int, mtime_ns: int) -> None:
        """The file's stat changed but its bytes did not (e.g. copied back with new mtime)."""
        self._write(
            "UPDATE photos SET size = ?, mtime_ns = ?, status = 'ok', missing_since = NULL "
            "WHERE id = ?",
            (size, mtime_ns, photo_id),
        )

    def content_hash_of(self, photo_id: int) -> str | None:
        row = self._one("SELECT content_hash FROM photos WHERE id = ?", (photo_id,))
        return row[0] if row else None

    def mark_missing(self, photo_ids: Sequence[int]) -> int:
        stamp = now_iso()
        with self.transaction():
            for photo_id in photo_ids:
                self._write(
                    "UPDATE photos SET status = 'missing', missing_since = COALESCE("
                    "missing_since, ?) WHERE id = ? AND status = 'ok'",
                    (stamp, photo_id),
                )
        return len(photo_ids)

    def forget_failures(self, paths: Sequence[str]) -> None:
        self._write_many("DELETE FROM failures WHERE path = ?", ((p,) for p in paths))

    def record_failure(
        self, path: str, root_id: int | None, reason: str, message: str,
        size: int | None, mtime_ns: int | None,
    ) -> None:
        self._write(
            "INSERT INTO failures(path, root_id, reason, message, size, mtime_ns, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET "
            "reason = excluded.reason, message = excluded.message, size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, recorded_at = excluded.recorded_at",
            (path, root_id, reason, message, size, mtime_ns, now_iso()),
        )

    def failures(self) -> list[Failure]:
        return [
            Failure(*row)
            for row in self._rows(
                "SELECT path, reason, message, recorded_at FROM failures ORDER BY path"
            )
        ]

    def get_photo(self, photo_id: int) -> Photo | None:
        photos = self.photos_by_ids([photo_id])
        return photos.get(photo_id)

    def photo_id_for_path(self, path: str) -> int | None:
        row = self._one("SELECT id FROM photos WHERE path = ?", (path,))
        return row[0] if row else None

    def photos_by_ids(self, photo_ids: Sequence[int]) -> dict[int, Photo]:
        """Fetch photos with their accepted tags, in chunks to respect SQLite's
        variable limit."""
        result: dict[int, Photo] = {}
        ids = [int(i) for i in photo_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            tags: dict[int, list[str]] = {}
            for photo_id, key in self._rows(
                f"SELECT photo_id, tag_key FROM photo_tags WHERE state = 'accepted' "
                f"AND photo_id IN ({marks}) ORDER BY tag_key",
                chunk,
            ):
                tags.setdefault(photo_id, []).append(key)
            for row in self._rows(
                f"SELECT {_PHOTO_COLUMNS} FROM {_PHOTO_FROM} WHERE p.id IN ({marks})", chunk
            ):
                result[row[0]] = _photo_from_row(row, tuple(tags.get(row[0], ())))
        return result

    def _filter_sql(self, flt: PhotoFilter) -> tuple[str, list]:
        """WHERE clause (over `p` and `c`) for a filter; values always bound, never
        formatted into the SQL."""
        clauses = ["p.status = 'ok'"]
        params: list = []
        if flt.client is not None:
            clauses.append("c.name = ?")
            params.append(flt.client)
        if flt.project is not None:
            clauses.append("p.project = ?")
            params.append(flt.project)
        if flt.tag is not None:
            # A tag is named by its key or either label ("--tag 会议" or "--tag meeting").
            clauses.append(
                "p.id IN (SELECT photo_id FROM photo_tags WHERE state = 'accepted' AND "
                "tag_key IN (SELECT key FROM tags WHERE key = ? OR label_zh = ? "
                "OR label_en = ? COLLATE NOCASE))"
            )
            params.extend([flt.tag] * 3)
        if flt.since is not None:
            clauses.append("p.taken_at >= ?")
            params.append(flt.since.isoformat())
        if flt.until is not None:
            clauses.append("p.taken_at < date(?, '+1 day')")
            params.append(flt.until.isoformat())
        if flt.photo_ids is not None:
            marks = ",".join("?" * len(flt.photo_ids)) or "NULL"
            clauses.append(f"p.id IN ({marks})")
            params.extend(int(i) for i in flt.photo_ids)
        return " AND ".join(clauses), params

    def photo_ids_matching(self, flt: PhotoFilter) -> np.ndarray:
        """Ids of the searchable photos matching ``flt``, as a read-only array.

        Recent answers are reused until the database changes (a write through this
        connection or a commit by another): fetching a large client's ids costs ~100 ms
        at 300k photos, a whole search's budget (issue 6, benchmarks/query_latency.py).
        """
        with self._lock:
            version = self._one("PRAGMA data_version")
            token = (self._conn.total_changes, version[0] if version else None)
            cache = self._ids_cache
            hit = cache.get(flt)
            if hit is not None and hit[0] == token:
                return hit[1]
            where, params = self._filter_sql(flt)
            rows = self._rows(f"SELECT p.id FROM {_PHOTO_FROM} WHERE {where}", params)
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            ids.setflags(write=False)
            cache.pop(flt, None)
            cache[flt] = (token, ids)
            while len(cache) > _IDS_CACHE_SIZE:
                cache.pop(next(iter(cache)))
            return ids

    def list_photos(self, flt: PhotoFilter, limit: int = 100, offset: int = 0) -> list[Photo]:
        where, params = self._filter_sql(flt)
        rows = self._rows(
            f"SELECT p.id FROM {_PHOTO_FROM} WHERE {where} "
            "ORDER BY p.taken_at DESC, p.id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        photos = self.photos_by_ids([r[0] for r in rows])
        return [photos[r[0]] for r in rows if r[0] in photos]

    def projects(self, client: str | None = None) -> list[tuple[str, int]]:
        where, params = self._filter_sql(PhotoFilter(client=client))
        return [
            (name, count)
            for name, count in self._rows(
                f"SELECT p.project, COUNT(*) FROM {_PHOTO_FROM} WHERE {where} "
                "AND p.project IS NOT NULL GROUP BY p.project ORDER BY p.project",
                params,
            )
        ]

    def iter_embeddings(self, batch: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of every searchable photo, in id order and in chunks, so a
        rebuild of the vector index never holds the rows twice."""
        last = -1
        while True:
            rows = self._rows(
                "SELECT e.photo_id, e.vector FROM embeddings e JOIN photos p ON p.id = "
                "e.photo_id WHERE p.status = 'ok' AND e.photo_id > ? ORDER BY e.photo_id "
                "LIMIT ?",
                (last, batch),
            )
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.vstack([blob_to_vector(r[1]) for r in rows])
            last = int(ids[-1])
            yield ids, vectors

    def searchable_count(self) -> int:
        """Photos with status ok and an embedding. Every embedding belongs to a photo (a
        foreign key), so when there are as many embeddings as photos each photo has one
        and counting photos is enough: ~50 ms instead of ~600 ms at a million photos,
        which matters because every update of the vector index checks this count."""
        with self.transaction():  # one snapshot for the counts compared
            photos = self._one("SELECT COUNT(*) FROM photos")
            embeddings = self._one("SELECT COUNT(*) FROM embeddings")
            if photos is not None and embeddings is not None and photos[0] == embeddings[0]:
                row = self._one("SELECT COUNT(*) FROM photos WHERE status = 'ok'")
            else:
                row = self._one(
                    "SELECT COUNT(*) FROM embeddings e JOIN photos p ON p.id = e.photo_id "
                    "WHERE p.status = 'ok'"
                )
        return int(row[0]) if row else 0

    def status_counts(self) -> dict[str, int]:
        counts = {status: n for status, n in self._rows(
            "SELECT status, COUNT(*) FROM photos GROUP BY status")}
        row = self._one("SELECT COUNT(*) FROM failures")
        counts["failed"] = int(row[0]) if row else 0
        return counts

    def failure_reasons(self) -> dict[str, int]:
        return dict(self._rows("SELECT reason, COUNT(*) FROM failures GROUP BY reason"))

    # --- vector index sync
    # (issue 6: update the FAISS file in place from the changes logged by triggers)
    def vector_changes_since(self, since: int, limit: int) -> VectorChanges:
        """Photos whose vector or searchability changed after mark ``since``, with the
        current vectors of those searchable now, all from one snapshot so the mark, the
        changes and the count agree even while another process writes. More than
        ``limit`` changes (or a requested rebuild) come back without vectors."""
        with self.transaction():
            mark = self.vectors_generation()
            # No ORDER BY: it would make SQLite walk the whole table in id order instead
            # of the few newest entries of the seq index (36 ms against 0.2 at 1M).
            rows = self._rows(
                "SELECT photo_id FROM vector_changes WHERE seq > ?", (int(since),)
            )
            changed = np.sort(np.fromiter((r[0] for r in rows), dtype=np.int64,
                                          count=len(rows)))
            requested = bool(len(changed)) and int(changed[0]) == 0
            changed = changed[changed != 0]
            searchable = self.searchable_count()
            complete = not requested and len(changed) <= limit
            rows = []
            if complete and len(changed):
                rows = self._rows(
                    "SELECT e.photo_id, e.vector FROM vector_changes v JOIN photos p ON "
                    "p.id = v.photo_id JOIN embeddings e ON e.photo_id = v.photo_id "
                    "WHERE v.seq > ? AND p.status = 'ok'",
                    (int(since),),
                )
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = (np.vstack([blob_to_vector(r[1]) for r in rows]) if rows
                   else np.zeros((0, 0), dtype=np.float32))
        return VectorChanges(int(since), mark, changed, ids, vectors, searchable, requested,
                             complete)

    # ------------------------------------------------------------------ tags
    # (issue 3: vocabulary, suggestions, review decisions, learned tag models)
    _TAG_COLUMNS = "key, label_zh, label_en, prompts, source, retired, threshold, updated_at"

    @staticmethod
    def _tag_from_row(row: tuple) -> TagRow:
        key, zh, en, prompts, source, retired, threshold, updated_at = row
        return TagRow(key, zh, en, tuple(json.loads(prompts or "[]")), source, bool(retired),
                      threshold, updated_at)

    def tags(self, include_retired: bool = True) -> list[TagRow]:
        where = "" if include_retired else "WHERE retired = 0"
        return [self._tag_from_row(r) for r in self._rows(
            f"SELECT {self._TAG_COLUMNS} FROM tags {where} ORDER BY key")]

    def tag(self, key: str) -> TagRow | None:
        row = self._one(f"SELECT {self._TAG_COLUMNS} FROM tags WHERE key = ?", (key,))
        return self._tag_from_row(row) if row else None

    def find_tags(self, ref: str) -> list[TagRow]:
        """Tags whose key, Chinese label or English label (any case) is `ref`."""
        return [self._tag_from_row(r) for r in self._rows(
            f"SELECT {self._TAG_COLUMNS} FROM tags WHERE key = ?1 OR label_zh = ?1 "
            "OR label_en = ?1 COLLATE NOCASE ORDER BY key = ?1 DESC, retired, key", (ref,))]

    def save_tag(self, tag: TagRow) -> None:
        """Insert or overwrite one tag definition."""
        self._write(
            f"INSERT INTO tags({self._TAG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET label_zh = excluded.label_zh, "
            "label_en = excluded.label_en, prompts = excluded.prompts, "
            "source = excluded.source, retired = excluded.retired, "
            "threshold = excluded.threshold, updated_at = excluded.updated_at",
            (tag.key, tag.label_zh, tag.label_en, json.dumps(list(tag.prompts),
             ensure_ascii=False), tag.source, int(tag.retired), tag.threshold, now_iso()),
        )

    def retire_tags(self, keys: Sequence[str]) -> None:
        """Retire tags: no more suggestions; accepted tags stay on their photos."""
        with self.transaction():
            for key in keys:
                self._write("UPDATE tags SET retired = 1, updated_at = ? WHERE key = ?",
                            (now_iso(), key))
                self._write("DELETE FROM photo_tags WHERE tag_key = ? AND state = 'suggested'",
                            (key,))

    def searchable_stamp(self) -> tuple[int, int]:
        """(vectors generation, photos with status ok): changes whenever the set of
        searchable vectors may have; cheaper than counting embeddings."""
        row = self._one("SELECT COUNT(*) FROM photos WHERE status = 'ok'")
        return self.vectors_generation(), int(row[0]) if row else 0

    def tag_state_counts(self) -> dict[str, dict[str, int]]:
        """Per tag: how many searchable photos have it suggested, accepted, rejected."""
        counts: dict[str, dict[str, int]] = {}
        for key, state, n in self._rows(
            "SELECT pt.tag_key, pt.state, COUNT(*) FROM photo_tags pt JOIN photos p "
            "ON p.id = pt.photo_id AND p.status = 'ok' GROUP BY pt.tag_key, pt.state"
        ):
            counts.setdefault(key, {})[state] = n
        return counts

    def tag_vectors(self, model_id: str) -> dict[str, TagVectorRow]:
        return {
            row[0]: TagVectorRow(row[0], row[1], row[2], blob_to_vector(row[3]).copy())
            for row in self._rows(
                "SELECT tag_key, model_id, source_sha, vector FROM tag_vectors "
                "WHERE model_id = ?", (model_id,))
        }

    def save_tag_vectors(self, rows: Sequence[TagVectorRow]) -> None:
        stamp = now_iso()
        self._write_many(
            "INSERT INTO tag_vectors(tag_key, model_id, source_sha, vector, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(tag_key, model_id) DO UPDATE SET "
            "source_sha = excluded.source_sha, vector = excluded.vector, "
            "updated_at = excluded.updated_at",
            [(r.tag_key, r.model_id, r.source_sha, vector_to_blob(r.vector), stamp)
             for r in rows],
        )

    def tag_models(self, model_id: str) -> dict[str, StoredTagModel]:
        return {
            row[0]: StoredTagModel(row[0], row[1], blob_to_vector(row[2]).copy(), row[3],
                                   row[4], row[5], row[6])
            for row in self._rows(
                "SELECT tag_key, model_id, weights, bias, positives, negatives, trained_at "
                "FROM tag_models WHERE model_id = ?", (model_id,))
        }

    def save_tag_model(self, model: StoredTagModel) -> None:
        self._write(
            "INSERT INTO tag_models(tag_key, model_id, weights, bias, positives, negatives, "
            "trained_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(tag_key) DO UPDATE SET "
            "model_id = excluded.model_id, weights = excluded.weights, bias = excluded.bias, "
            "positives = excluded.positives, negatives = excluded.negatives, "
            "trained_at = excluded.trained_at",
            (model.tag_key, model.model_id, vector_to_blob(model.weights), float(model.bias),
             model.positives, model.negatives, now_iso()),
        )

    def delete_tag_model(self, key: str) -> None:
        self._write("DELETE FROM tag_models WHERE tag_key = ?", (key,))

    def tag_examples(self, key: str | None = None) -> dict[str, tuple[list[int], list[int]]]:
        """Per tag (or for one): (accepted, rejected) searchable photo ids that have an
        embedding — what the tagger learns from."""
        # Naming the tags lets SQLite use the (tag_key, state) index instead of reading
        # every suggestion in the library to find the few reviewed ones.
        where, params = (("pt.tag_key = ?", (key,)) if key is not None
                         else ("pt.tag_key IN (SELECT key FROM tags)", ()))
        examples: dict[str, tuple[list[int], list[int]]] = {}
        for tag_key, photo_id, state in self._rows(
            "SELECT pt.tag_key, pt.photo_id, pt.state FROM photo_tags pt JOIN photos p "
            "ON p.id = pt.photo_id AND p.status = 'ok' JOIN embeddings e ON e.photo_id = "
            f"pt.photo_id WHERE {where} AND pt.state IN ('accepted', 'rejected') "
            "ORDER BY pt.tag_key, pt.photo_id",
            params,
        ):
            accepted, rejected = examples.setdefault(tag_key, ([], []))
            (accepted if state == "accepted" else rejected).append(photo_id)
        return examples

    def embeddings_for(self, photo_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of those photos that have an embedding, in the order asked."""
        found: dict[int, np.ndarray] = {}
        ids = [int(i) for i in photo_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for photo_id, blob in self._rows(
                f"SELECT photo_id, vector FROM embeddings WHERE photo_id IN ({marks})", chunk
            ):
                found[photo_id] = blob_to_vector(blob)
        kept = [i for i in dict.fromkeys(ids) if i in found]
        if not kept:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.asarray(kept, dtype=np.int64), np.vstack([found[i] for i in kept])

    def searchable_embeddings(self, photo_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of those photos that are searchable (status ok, with an embedding),
        in id order: what an index run's new photos are scored from without reading the
        rest of the library. Asked in chunks to stay under SQLite's bound-variable limit."""
        ids = sorted({int(i) for i in photo_ids})
        found_ids: list[int] = []
        vectors: list[np.ndarray] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for photo_id, blob in self._rows(
                "SELECT e.photo_id, e.vector FROM embeddings e JOIN photos p ON p.id = "
                f"e.photo_id WHERE p.status = 'ok' AND e.photo_id IN ({marks}) "
                "ORDER BY e.photo_id", chunk
            ):
                found_ids.append(photo_id)
                vectors.append(blob_to_vector(blob))
        if not found_ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.asarray(found_ids, dtype=np.int64), np.vstack(vectors)

    def tag_calibrations(self, model_id: str) -> dict[str, TagCalibrationRow]:
        """Per tag, what its suggestions were last scored with (for this model)."""
        return {
            row[0]: TagCalibrationRow(
                row[0], row[1], row[2],
                blob_to_vector(row[3]).copy() if row[3] is not None else None,
                row[4], row[5], row[6], row[7])
            for row in self._rows(
                "SELECT tag_key, model_id, signature, prior, center, scale, n, calibrated_at "
                "FROM tag_calibrations WHERE model_id = ?", (model_id,))
        }

    def library_calibration(self) -> LibraryCalibration | None:
        row = self._one(
            "SELECT model_id, photos, pooled_scale, mean, calibrated_at "
            "FROM tag_calibration_library WHERE id = 1")
        if row is None:
            return None
        return LibraryCalibration(row[0], row[1], row[2], blob_to_vector(row[3]).copy(), row[4])

    def save_tag_calibrations(
        self, rows: Sequence[TagCalibrationRow], library: LibraryCalibration | None = None,
        *, drop: Sequence[str] = (),
    ) -> None:
        """Store tag calibrations (and, after a full calibration, the library's side) and
        forget those of tags in `drop`, in one transaction."""
        stamp = now_iso()
        with self.transaction():
            for key in drop:
                self._write("DELETE FROM tag_calibrations WHERE tag_key = ?", (key,))
            self._conn.executemany(
                "INSERT INTO tag_calibrations(tag_key, model_id, signature, prior, center, "
                "scale, n, calibrated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(tag_key) DO UPDATE SET model_id = excluded.model_id, "
                "signature = excluded.signature, prior = excluded.prior, "
                "center = excluded.center, scale = excluded.scale, n = excluded.n, "
                "calibrated_at = excluded.calibrated_at",
                [(r.tag_key, r.model_id, r.signature,
                  vector_to_blob(r.prior) if r.prior is not None else None,
                  r.center, r.scale, int(r.n), stamp) for r in rows],
            )
            if library is not None:
                self._write(
                    "INSERT INTO tag_calibration_library(id, model_id, photos, pooled_scale, "
                    "mean, calibrated_at) VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE "
                    "SET model_id = excluded.model_id, photos = excluded.photos, "
                    "pooled_scale = excluded.pooled_scale, mean = excluded.mean, "
                    "calibrated_at = excluded.calibrated_at",
                    (library.model_id, int(library.photos), float(library.pooled_scale),
                     vector_to_blob(library.mean), stamp),
                )

    def replace_suggestions(
        self, photo_ids: Sequence[int] | None, tag_keys: Sequence[str],
        rows: Sequence[tuple[int, str, float, str]],
    ) -> tuple[int, int]:
        """Make the pending suggestions for (photos × tags) exactly `rows`
        ((photo_id, tag_key, score, source)); None means every photo. Accepted and rejected
        rows are never touched, so a rejected tag cannot come back. Returns (written,
        removed) counts; unchanged suggestions are left alone."""
        stamp = now_iso()
        with self.transaction():
            conn = self._conn
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS sugg_new("
                         "photo_id INTEGER, tag_key TEXT, score REAL, source TEXT, "
                         "PRIMARY KEY (photo_id, tag_key))")
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS sugg_photos(photo_id INTEGER "
                         "PRIMARY KEY)")
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS sugg_tags(tag_key TEXT PRIMARY KEY)")
            for table in ("sugg_new", "sugg_photos", "sugg_tags"):
                conn.execute(f"DELETE FROM temp.{table}")
            conn.executemany("INSERT OR REPLACE INTO temp.sugg_new VALUES (?, ?, ?, ?)",
                             [(int(p), k, float(s), src) for p, k, s, src in rows])
            conn.executemany("INSERT OR IGNORE INTO temp.sugg_tags VALUES (?)",
                             [(k,) for k in tag_keys])
            photo_scope, tag_column = "", "tag_key"
            if photo_ids is not None:
                conn.executemany("INSERT OR IGNORE INTO temp.sugg_photos VALUES (?)",
                                 [(int(i),) for i in photo_ids])
                photo_scope = "AND photo_id IN (SELECT photo_id FROM temp.sugg_photos)"
                # A few photos: look them up by photo id (the primary key), not by walking
                # every suggestion of every tag; the unary + keeps SQLite off the tag index.
                tag_column = "+tag_key"
            removed = conn.execute(
                "DELETE FROM photo_tags WHERE state = 'suggested' "
                f"AND {tag_column} IN (SELECT tag_key FROM temp.sugg_tags) {photo_scope} "
                "AND NOT EXISTS (SELECT 1 FROM temp.sugg_new n WHERE n.photo_id = "
                "photo_tags.photo_id AND n.tag_key = photo_tags.tag_key)"
            ).rowcount
            written = conn.execute(
                "INSERT INTO photo_tags(photo_id, tag_key, state, score, source, updated_at) "
                "SELECT photo_id, tag_key, 'suggested', score, source, ? FROM temp.sugg_new "
                "WHERE true ON CONFLICT(photo_id, tag_key) DO UPDATE SET "
                "score = excluded.score, source = excluded.source, "
                "updated_at = excluded.updated_at WHERE photo_tags.state = 'suggested' AND "
                "(abs(photo_tags.score - excluded.score) > 1e-4 OR "
                "photo_tags.source IS NOT excluded.source)",
                (stamp,),
            ).rowcount
            for table in ("sugg_new", "sugg_photos", "sugg_tags"):
                conn.execute(f"DELETE FROM temp.{table}")  # leave nothing for the next call
        return written, removed

    def pending_suggestions(
        self, flt: PhotoFilter | None = None, tag_key: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[Suggestion]:
        """Suggestions waiting for review among searchable photos, by tag then score."""
        where, params = self._filter_sql(flt or PhotoFilter())
        if tag_key is not None:
            where += " AND pt.tag_key = ?"
            params.append(tag_key)
        rows = self._rows(
            "SELECT pt.photo_id, p.path, c.name, p.project, p.taken_at, p.thumbnail, "
            "pt.tag_key, t.label_zh, t.label_en, pt.score, pt.source "
            f"FROM photo_tags pt JOIN photos p ON p.id = pt.photo_id "
            "LEFT JOIN clients c ON c.id = p.client_id "
            "JOIN tags t ON t.key = pt.tag_key "
            f"WHERE pt.state = 'suggested' AND t.retired = 0 AND {where} "
            "ORDER BY pt.tag_key, pt.score DESC, pt.photo_id LIMIT ? OFFSET ?",
            [*params, int(limit), int(offset)],
        )
        return [Suggestion(*row) for row in rows]

    def pending_counts(self, flt: PhotoFilter | None = None) -> list[PendingCount]:
        """Per tag, how many suggestions wait for review in the selection (most first)."""
        where, params = self._filter_sql(flt or PhotoFilter())
        rows = self._rows(
            "SELECT pt.tag_key, t.label_zh, t.label_en, COUNT(*), MAX(pt.score) "
            f"FROM photo_tags pt JOIN photos p ON p.id = pt.photo_id "
            "LEFT JOIN clients c ON c.id = p.client_id "
            "JOIN tags t ON t.key = pt.tag_key "
            f"WHERE pt.state = 'suggested' AND t.retired = 0 AND {where} "
            "GROUP BY pt.tag_key ORDER BY COUNT(*) DESC, pt.tag_key",
            params,
        )
        return [PendingCount(*row) for row in rows]

    def suggested_photo_ids(self, tag_key: str, flt: PhotoFilter | None = None) -> list[int]:
        where, params = self._filter_sql(flt or PhotoFilter())
        rows = self._rows(
            f"SELECT pt.photo_id FROM photo_tags pt JOIN photos p ON p.id = pt.photo_id "
            "LEFT JOIN clients c ON c.id = p.client_id "
            f"WHERE pt.state = 'suggested' AND pt.tag_key = ? AND {where} ORDER BY pt.photo_id",
            [tag_key, *params],
        )
        return [r[0] for r in rows]

    def photo_statuses(self, photo_ids: Sequence[int]) -> dict[int, str]:
        result: dict[int, str] = {}
        ids = [int(i) for i in photo_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            result.update(self._rows(
                f"SELECT id, status FROM photos WHERE id IN ({marks})", chunk))
        return result

    def tag_states(self, photo_ids: Sequence[int], tag_key: str) -> dict[int, TagState]:
        result: dict[int, TagState] = {}
        ids = [int(i) for i in photo_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for photo_id, state, score, source in self._rows(
                "SELECT photo_id, state, score, source FROM photo_tags WHERE tag_key = ? "
                f"AND photo_id IN ({marks})", [tag_key, *chunk]
            ):
                result[photo_id] = TagState(state, score, source)
        return result

    def decide_tags(
        self, photo_ids: Sequence[int], tag_key: str, new_state: str
    ) -> tuple[int | None, list[int]]:
        """Accept or reject a tag on photos as one undoable batch; photos already in that
        state are left out. Returns (batch id or None when nothing changed, changed ids)."""
        if new_state not in ("accepted", "rejected"):
            raise CatalogError(f"unknown tag decision {new_state!r}")
        stamp = now_iso()
        with self.transaction():
            current = self.tag_states(photo_ids, tag_key)
            changed = [int(i) for i in dict.fromkeys(photo_ids)
                       if current.get(int(i)) is None or current[int(i)].state != new_state]
            if not changed:
                return None, []
            row = self._one("SELECT COALESCE(MAX(batch_id), 0) + 1 FROM tag_decisions")
            batch = int(row[0]) if row else 1
            for photo_id in changed:
                prev = current.get(photo_id)
                self._write(
                    "INSERT INTO tag_decisions(batch_id, photo_id, tag_key, previous_state, "
                    "previous_score, previous_source, new_state, decided_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (batch, photo_id, tag_key, prev.state if prev else None,
                     prev.score if prev else None, prev.source if prev else None,
                     new_state, stamp),
                )
                self._write(
                    "INSERT INTO photo_tags(photo_id, tag_key, state, score, source, "
                    "updated_at) VALUES (?, ?, ?, NULL, 'manual', ?) "
                    "ON CONFLICT(photo_id, tag_key) DO UPDATE SET state = excluded.state, "
                    "updated_at = excluded.updated_at",
                    (photo_id, tag_key, new_state, stamp),
                )
        return batch, changed

    def undo_tag_batch(self) -> tuple[int, list[str], list[int]] | None:
        """Undo the most recent decision batch not yet undone: every photo gets back the
        state it had before. Returns (batch id, tag keys, photo ids), or None if none."""
        with self.transaction():
            row = self._one("SELECT MAX(batch_id) FROM tag_decisions WHERE undone = 0")
            if row is None or row[0] is None:
                return None
            batch = int(row[0])
            decisions = self._rows(
                "SELECT photo_id, tag_key, previous_state, previous_score, previous_source, "
                "new_state FROM tag_decisions WHERE batch_id = ? ORDER BY id DESC", (batch,))
            stamp = now_iso()
            for photo_id, key, state, score, source, _new in decisions:
                if state is None:
                    self._write("DELETE FROM photo_tags WHERE photo_id = ? AND tag_key = ?",
                                (photo_id, key))
                else:
                    self._write(
                        "UPDATE photo_tags SET state = ?, score = ?, source = ?, "
                        "updated_at = ? WHERE photo_id = ? AND tag_key = ?",
                        (state, score, source, stamp, photo_id, key),
                    )
            self._write("UPDATE tag_decisions SET undone = 1 WHERE batch_id = ?", (batch,))
        return batch, sorted({d[1] for d in decisions}), [d[0] for d in decisions]

    def photos_for_export(self, flt: PhotoFilter | None = None) -> Iterator[ExportRow]:
        """Searchable photos of a selection with their accepted tags, in id order."""
        where, params = self._filter_sql(flt or PhotoFilter())
        rows = self._rows(
            f"SELECT p.id, p.path, r.path FROM {_PHOTO_FROM} LEFT JOIN roots r "
            f"ON r.id = p.root_id WHERE {where} ORDER BY p.id", params)
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            marks = ",".join("?" * len(chunk))
            tags: dict[int, list[tuple[str, str, str]]] = {}
            for photo_id, key, zh, en in self._rows(
                "SELECT pt.photo_id, t.key, t.label_zh, t.label_en FROM photo_tags pt "
                "JOIN tags t ON t.key = pt.tag_key WHERE pt.state = 'accepted' "
                f"AND pt.photo_id IN ({marks}) ORDER BY pt.tag_key", [r[0] for r in chunk]
            ):
                tags.setdefault(photo_id, []).append((key, zh, en))
            for photo_id, path, root in chunk:
                yield ExportRow(photo_id, path, root, tuple(tags.get(photo_id, ())))

    # ---------------------------------------------------- trash and duplicates
    # (issue 4: trash journal, duplicate decisions, quality listings)
    def photos_with_embeddings(self, flt: PhotoFilter) -> tuple[list[Photo], np.ndarray]:
        """Searchable photos matching a filter and their vectors, rows aligned, for the
        duplicate pass. Tags are left out: only the few photos in groups need them."""
        where, params = self._filter_sql(flt)
        rows = self._rows(
            f"SELECT {_PHOTO_COLUMNS}, e.vector FROM {_PHOTO_FROM} "
            f"JOIN embeddings e ON e.photo_id = p.id WHERE {where} ORDER BY p.id",
            params,
        )
        photos = [_photo_from_row(row[:-1]) for row in rows]
        if not rows:
            return photos, np.zeros((0, 0), dtype=np.float32)
        return photos, np.vstack([blob_to_vector(row[-1]) for row in rows])

    def photos_below(
        self, flt: PhotoFilter, measure: str, below: float, limit: int | None = None
    ) -> list[tuple[Photo, float]]:
        """Searchable photos whose quality `measure` (sharpness, brightness or pixels) is
        under `below`, lowest first, with the value."""
        expressions = {
            "sharpness": "p.sharpness",
            "brightness": "p.brightness",
            "pixels": "(p.width * p.height)",
        }
        if measure not in expressions:
            raise CatalogError(f"unknown quality measure {measure!r}")
        expr = expressions[measure]
        where, params = self._filter_sql(flt)
        rows = self._rows(
            f"SELECT p.id, {expr} FROM {_PHOTO_FROM} WHERE {where} AND {expr} IS NOT NULL "
            f"AND {expr} < ? ORDER BY {expr}, p.id LIMIT ?",
            [*params, below, -1 if limit is None else int(limit)],
        )
        photos = self.photos_by_ids([r[0] for r in rows])
        return [(photos[r[0]], float(r[1])) for r in rows if r[0] in photos]

    def merge_accepted_tags(self, keeper_id: int, other_ids: Sequence[int]) -> list[str]:
        """Give the keeper of a duplicate group every tag a person accepted on the others,
        so removing copies never loses a tag. A tag the keeper has explicitly rejected
        stays rejected."""
        others = [int(i) for i in other_ids if int(i) != int(keeper_id)]
        if not others:
            return []
        marks = ",".join("?" * len(others))
        with self.transaction():
            keys = [
                row[0]
                for row in self._rows(
                    f"SELECT DISTINCT tag_key FROM photo_tags WHERE state = 'accepted' "
                    f"AND photo_id IN ({marks}) AND tag_key NOT IN (SELECT tag_key FROM "
                    "photo_tags WHERE photo_id = ? AND state IN ('accepted', 'rejected')) "
                    "ORDER BY tag_key",
                    [*others, int(keeper_id)],
                )
            ]
            stamp = now_iso()
            for key in keys:
                self._write(
                    "INSERT INTO photo_tags(photo_id, tag_key, state, score, source, "
                    "updated_at) VALUES (?, ?, 'accepted', NULL, 'duplicate', ?) "
                    "ON CONFLICT(photo_id, tag_key) DO UPDATE SET state = 'accepted', "
                    "source = 'duplicate', updated_at = excluded.updated_at",
                    (int(keeper_id), key, stamp),
                )
        return keys

    def record_duplicate_decision(
        self, keeper_id: int, trashed_ids: Sequence[int], strictness: str
    ) -> int:
        return self._write(
            "INSERT INTO duplicate_decisions(keeper_id, trashed_ids, strictness, decided_at) "
            "VALUES (?, ?, ?, ?)",
            (int(keeper_id), json.dumps([int(i) for i in trashed_ids]), strictness,
             now_iso()),
        ).lastrowid

    _TRASH_COLUMNS = (
        "t.id, t.photo_id, t.original_path, t.trash_path, t.size, t.content_hash, t.state, "
        "t.reason, t.journaled_at, t.moved_at, t.restored_at, t.emptied_at, c.name"
    )
    _TRASH_KEYS = (
        "id", "photo_id", "original_path", "trash_path", "size", "content_hash", "state",
        "reason", "journaled_at", "moved_at", "restored_at", "emptied_at", "client",
    )
    _TRASH_FROM = (
        "trash t LEFT JOIN photos p ON p.id = t.photo_id "
        "LEFT JOIN clients c ON c.id = p.client_id"
    )

    def journal_trash(
        self, photo_id: int, original_path: str, trash_path: str, size: int,
        content_hash: str, reason: str | None,
    ) -> int:
        """Write down a move into the trash *before* it happens (state 'moving'), so an
        interruption can be completed or rolled back on the next start."""
        return self._write(
            "INSERT INTO trash(photo_id, original_path, trash_path, size, content_hash, "
            "state, reason, journaled_at) VALUES (?, ?, ?, ?, ?, 'moving', ?, ?)",
            (int(photo_id), original_path, trash_path, size, content_hash, reason, now_iso()),
        ).lastrowid

    def trash_entry(self, trash_id: int) -> dict | None:
        row = self._one(
            f"SELECT {self._TRASH_COLUMNS} FROM {self._TRASH_FROM} WHERE t.id = ?",
            (int(trash_id),),
        )
        return dict(zip(self._TRASH_KEYS, row, strict=True)) if row else None

    def trash_entries(self, states: Sequence[str]) -> list[dict]:
        """Journal entries in any of `states`, oldest first."""
        marks = ",".join("?" * len(states)) or "NULL"
        return [
            dict(zip(self._TRASH_KEYS, row, strict=True))
            for row in self._rows(
                f"SELECT {self._TRASH_COLUMNS} FROM {self._TRASH_FROM} "
                f"WHERE t.state IN ({marks}) ORDER BY t.id",
                list(states),
            )
        ]

    def set_trash_state(self, trash_id: int, state: str, expected: Sequence[str]) -> bool:
        """Move a journal entry to `state` if it is still in one of `expected`."""
        marks = ",".join("?" * len(expected))
        cur = self._write(
            f"UPDATE trash SET state = ? WHERE id = ? AND state IN ({marks})",
            (state, int(trash_id), *expected),
        )
        return cur.rowcount == 1

    def finish_trash(self, trash_id: int) -> None:
        """The file is in the trash: hide the photo everywhere and drop it from FAISS."""
        with self.transaction():
            self._write(
                "UPDATE trash SET state = 'trashed', moved_at = ? WHERE id = ?",
                (now_iso(), int(trash_id)),
            )
            self._write(
                "UPDATE photos SET status = 'trashed' WHERE id = "
                "(SELECT photo_id FROM trash WHERE id = ?)",
                (int(trash_id),),
            )  # the status change is logged for the vector index (vector_changes)

    def finish_restore(self, trash_id: int) -> None:
        """The file is back at its original path: the photo is searchable again."""
        with self.transaction():
            self._write(
                "UPDATE trash SET state = 'restored', restored_at = ? WHERE id = ?",
                (now_iso(), int(trash_id)),
            )
            self._write(
                "UPDATE photos SET status = 'ok', missing_since = NULL WHERE status = "
                "'trashed' AND id = (SELECT photo_id FROM trash WHERE id = ?) AND path = "
                "(SELECT original_path FROM trash WHERE id = ?)",
                (int(trash_id), int(trash_id)),
            )  # the status change is logged for the vector index (vector_changes)

    def finish_empty(self, trash_id: int) -> None:
        """The file is deleted for good: forget the photo (vector, tags, text with it)."""
        with self.transaction():
            self._write(
                "UPDATE trash SET state = 'emptied', emptied_at = ? WHERE id = ?",
                (now_iso(), int(trash_id)),
            )
            row = self._one("SELECT photo_id FROM trash WHERE id = ?", (int(trash_id),))
            photo_id = row[0] if row else None
            if photo_id is not None:
                status = self._one("SELECT status FROM photos WHERE id = ?", (photo_id,))
                if status is not None and status[0] == "trashed":
                    self._write("UPDATE trash SET photo_id = NULL WHERE photo_id = ?",
                                (photo_id,))
                    self._write("DELETE FROM photos WHERE id = ?", (photo_id,))

    # ------------------------------------------------------------------- ocr
    # (issue 7: text read from photos, full-text search)
    def photos_needing_ocr(
        self, model_version: str, *, reread: bool = False, retry_failed: bool = False
    ) -> list[OcrTask]:
        """Photos whose current content has not been read yet, in id order.

        A photo is due when it was never read or its content changed since; with
        ``reread`` also when another model version read it, with ``retry_failed`` also
        when reading it failed. Missing and trashed photos wait until they are back.
        """
        rows = self._rows(
            "SELECT p.id, p.path, p.content_hash, p.size, p.mtime_ns FROM photos p "
            "LEFT JOIN ocr_reads r ON r.photo_id = p.id WHERE p.status = 'ok' AND ("
            "r.photo_id IS NULL OR r.content_hash != p.content_hash "
            "OR (? AND r.model_version != ?) OR (? AND r.state = 'failed')) ORDER BY p.id",
            (int(reread), model_version, int(retry_failed)),
        )
        return [OcrTask(*row) for row in rows]

    def save_ocr_read(
        self,
        photo_id: int,
        content_hash: str,
        model_version: str,
        state: str,
        lines: Sequence[OcrLineRecord] = (),
        message: str | None = None,
    ) -> None:
        """Store (or replace) what was read from a photo, lines and searchable text
        together; the FTS index follows through the table's triggers."""
        full_text = "\n".join(line.text for line in lines)
        with self.transaction():
            self._write("DELETE FROM ocr_lines WHERE photo_id = ?", (photo_id,))
            self._write(
                "INSERT INTO ocr_reads(photo_id, content_hash, model_version, state, message, "
                "full_text, read_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(photo_id) DO "
                "UPDATE SET content_hash = excluded.content_hash, model_version = "
                "excluded.model_version, state = excluded.state, message = excluded.message, "
                "full_text = excluded.full_text, read_at = excluded.read_at",
                (photo_id, content_hash, model_version, state, message, full_text, now_iso()),
            )
            self._conn.executemany(
                "INSERT INTO ocr_lines(photo_id, line_no, text, confidence, box) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (photo_id, n, line.text, float(line.confidence), encode_box(line.box))
                    for n, line in enumerate(lines)
                ],
            )

    def ocr_read(self, photo_id: int) -> OcrRead | None:
        """What was read from one photo, lines in reading order; None if never read."""
        row = self._one(
            "SELECT r.photo_id, r.state, r.message, r.model_version, r.read_at, "
            "r.content_hash = p.content_hash FROM ocr_reads r JOIN photos p ON p.id = "
            "r.photo_id WHERE r.photo_id = ?",
            (int(photo_id),),
        )
        if row is None:
            return None
        lines = tuple(
            OcrLineRecord(text, confidence, decode_box(box))
            for text, confidence, box in self._rows(
                "SELECT text, confidence, box FROM ocr_lines WHERE photo_id = ? "
                "ORDER BY line_no",
                (int(photo_id),),
            )
        )
        return OcrRead(*row[:5], current=bool(row[5]), lines=lines)

    def ocr_text_candidates(
        self, terms: Sequence[str], flt: PhotoFilter, limit: int = 2000
    ) -> list[tuple[int, str]]:
        """(photo id, text) of searchable photos whose current text contains any term.

        Terms of three characters or more use the trigram FTS index; shorter ones (a
        two-character Chinese word such as 拜访) are beyond trigrams and fall back to a
        LIKE scan of the stored text. Ranking is left to the caller.
        """
        clauses: list[str] = []
        term_params: list[str] = []
        for term in terms:
            if not term:
                continue
            if len(term) >= 3:
                clauses.append("r.photo_id IN (SELECT rowid FROM ocr_fts WHERE ocr_fts MATCH ?)")
                term_params.append(fts_phrase(term))
            else:
                clauses.append("r.full_text LIKE ? ESCAPE '\\'")
                term_params.append(f"%{escape_like(term)}%")
        if not clauses:
            return []
        where, params = self._filter_sql(flt)
        rows = self._rows(
            f"SELECT r.photo_id, r.full_text FROM {_PHOTO_FROM} JOIN ocr_reads r "
            f"ON r.photo_id = p.id WHERE {where} AND r.state = 'text' AND r.content_hash = "
            f"p.content_hash AND ({' OR '.join(clauses)}) ORDER BY r.photo_id LIMIT ?",
            [*params, *term_params, int(limit)],
        )
        return [(int(photo_id), text) for photo_id, text in rows]

    def ocr_photo_ids_with_text(self) -> np.ndarray:
        """Ids of searchable photos whose current content has text in it."""
        rows = self._rows(
            "SELECT p.id FROM photos p JOIN ocr_reads r ON r.photo_id = p.id WHERE "
            "p.status = 'ok' AND r.state = 'text' AND r.content_hash = p.content_hash"
        )
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def ocr_state_counts(self) -> dict[str, int]:
        """Searchable photos by OCR state of their current content; 'unread' for the rest."""
        rows = self._rows(
            "SELECT CASE WHEN r.photo_id IS NULL OR r.content_hash != p.content_hash "
            "THEN 'unread' ELSE r.state END AS s, COUNT(*) FROM photos p LEFT JOIN ocr_reads r "
            "ON r.photo_id = p.id WHERE p.status = 'ok' GROUP BY s"
        )
        return {state: int(n) for state, n in rows}
