"""The FAISS vector index: a cache of the catalog's embeddings, never the source of truth.

`vectors.faiss` is written to a temporary file and renamed into place, next to a small
`vectors.faiss.json` stamp saying which file it describes and up to which change of the
catalog it holds (its vectors generation: a high-water mark that triggers in catalog.db
advance on every change to a vector or to whether a photo is searchable). A stale index is
brought up to date in place: the photos changed since its mark are removed and those still
searchable added back with their current vectors, so adding or trashing a photo costs
milliseconds instead of a rebuild. The file itself is rewritten only once enough changed;
until then each load applies the few changes again from the catalog. A missing,
unreadable or mismatched file, or an approximate index whose cells no longer fit the
library's size, is rebuilt from the embeddings in catalog.db — photos are never decoded
again for this.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.catalog import Catalog
from indexer.vector_records import VectorChanges

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VectorHit:
    photo_id: int
    score: float


@dataclass(frozen=True)
class IndexHealth:
    state: str  # ok | updated (in place) | rebuilt | empty
    vectors: int
    generation: int
    detail: str


# Up to this many vectors the index is exact (a flat scan, ~10 ms per query at 100k on one
# core); above it an inverted-file index visits only the cells nearest the query. Measured
# in benchmarks/query_latency.py; see docs/performance.md.
EXACT_LIMIT = 100_000
# Filtered searches whose allowed set is at most this large scan every allowed vector
# (exact, cost proportional to the set); larger sets use the approximate index's cells.
FILTER_EXACT_LIMIT = 50_000
# Inverted-file layout: about sqrt(n) cells, trained on this many points per cell with a
# short k-means (more iterations bought no measurable recall on clustered vectors).
_IVF_MIN_LISTS = 64
_IVF_TRAIN_PER_LIST = 40
_IVF_TRAIN_ITERATIONS = 10
# Cells visited per query: a share of all cells, never fewer than _IVF_MIN_PROBES.
_IVF_PROBE_SHARE = 1 / 16
_IVF_MIN_PROBES = 16
# An inverted file keeps the cells it was trained with while the library stays within this
# factor of the size they were placed for; beyond it cells get too full or too sparse for
# the number of cells probed, and the index is retrained (rebuilt).
_IVF_RETRAIN_FACTOR = 2.0
# A stale file is updated in place unless more photos changed than this share of its size
# (or this many, for small libraries): then reading everything once is as cheap, and the
# changed vectors need not all be held in memory at once.
_SYNC_MAX_SHARE = 0.5
_SYNC_MIN_CHANGES = 20_000
# Rewriting the file is a full write (~2 GB at a million photos, seconds of disk), so it
# waits until this many photos changed since it was saved; until then each load applies
# those changes again from the catalog, which costs far less for a lag this small.
_RESAVE_SHARE = 0.01
_RESAVE_MIN = 1_000
# The stamp's layout; files stamped by an older kezhao are rebuilt once.
_STAMP_FORMAT = 2


def _faiss():
    import faiss  # imported lazily: it costs start-up time every CLI command would pay

    return faiss


class VectorIndex:
    """In-memory FAISS index over L2-normalised vectors, keyed by photo id.

    Inner product on normalised vectors is cosine similarity, so scores are in [-1, 1].
    Either exact (a flat index) or, for large libraries, an inverted-file index whose
    cells hold the full vectors: it approximates only which vectors are looked at; every
    score it returns is exact. Use :meth:`from_batches` to get the right one for a size.
    """

    def __init__(self, index, generation: int, trained_for: int | None = None) -> None:
        self._index = index
        self.generation = generation
        # For an inverted file, the number of vectors its cells were placed for.
        self.trained_for = trained_for if _is_ivf(index) else None
        self._lock = threading.RLock()  # held by searches, updates and saves
        if _is_ivf(index):
            index.nprobe = ivf_probes(int(index.nlist))  # follows the rule, even in old files

    @classmethod
    def empty(cls, dim: int, generation: int = 0) -> VectorIndex:
        """An exact index to add vectors to."""
        faiss = _faiss()
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), generation)

    @classmethod
    def from_batches(
        cls,
        batches: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
        count: int,
        generation: int = 0,
        *,
        exact_limit: int = EXACT_LIMIT,
    ) -> VectorIndex | None:
        """Build the index for ``count`` vectors read from ``batches()`` (ids, vectors).

        Exact up to ``exact_limit`` vectors, approximate above. ``batches`` is a callable
        because the approximate index reads twice — a spread-out sample to place its cells,
        then everything — so a million vectors are never all in memory twice.
        Returns None when there is nothing to index.
        """
        if count > exact_limit:
            return _build_ivf(batches, count, generation)
        index: VectorIndex | None = None
        for ids, vectors in batches():
            if index is None:
                index = cls.empty(vectors.shape[1], generation)
            index.add(ids, vectors)
        return index

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def kind(self) -> str:
        """``exact`` or ``approximate`` (inverted file), for status and benchmarks."""
        return "approximate" if _is_ivf(self._index) else "exact"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self._lock:
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(ids, dtype=np.int64),
            )

    def remove(self, ids: np.ndarray) -> int:
        """Drop these photo ids (absent ones are ignored); returns how many were there."""
        with self._lock:
            return self._remove(ids)

    def _remove(self, ids: np.ndarray) -> int:
        faiss = _faiss()
        batch = np.ascontiguousarray(ids, dtype=np.int64)
        if len(batch) == 0:
            return 0
        if _is_ivf(self._index) and self._index.direct_map.type != faiss.DirectMap.NoMap:
            # With a direct map (set up by reconstruct) FAISS accepts only an id array.
            selector = faiss.IDSelectorArray(len(batch), faiss.swig_ptr(batch))
        else:
            selector = faiss.IDSelectorBatch(batch)  # hashed: one lookup per stored vector
        return int(self._index.remove_ids(selector))

    def apply(self, changes: VectorChanges) -> None:
        """Catch up with the catalog: remove every changed photo, add back the current
        vectors of those still searchable. Checked before anything is touched, and done
        under the index's lock, so a search running meanwhile waits and never sees half
        of it; cost is one pass over the stored ids plus the added vectors."""
        if not changes.complete or changes.rebuild_requested:
            raise ValueError("these changes ask for a rebuild, not an update")
        if len(changes.ids) and changes.vectors.shape[1] != self.dim:
            raise ValueError(f"vectors of {changes.vectors.shape[1]} dimensions cannot join "
                             f"an index of {self.dim}")
        vectors = np.ascontiguousarray(changes.vectors, dtype=np.float32)
        ids = np.ascontiguousarray(changes.ids, dtype=np.int64)
        with self._lock:
            self._remove(changes.changed)
            if len(ids):
                self._index.add_with_ids(vectors, ids)
            self.generation = changes.mark

    def search(
        self, query: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> list[VectorHit]:
        """Top-k by cosine. With ``allowed_ids`` the filter is applied inside FAISS, so a
        small client's photos are found however many others exist: a small allowed set is
        scanned exhaustively (exact), a large one through the nearest cells.

        A single query runs on the calling thread only: on a small machine, spreading one
        query over every core made it several times slower, and it would stall other
        queries served at the same time.
        """
        if self.size == 0 or k <= 0:
            return []
        faiss = _faiss()
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        allowed = None
        if allowed_ids is not None:
            allowed = np.asarray(allowed_ids, dtype=np.int64).ravel()
            if len(allowed) == 0:
                return []
            k = min(k, len(allowed))
        k = min(k, self.size)
        selector, keep_alive = _selector(faiss, allowed) if allowed is not None else (None, None)
        params = self._params(faiss, selector, None if allowed is None else len(allowed))
        threads = faiss.omp_get_max_threads()
        with self._lock:
            faiss.omp_set_num_threads(1)  # OpenMP's setting is per calling thread
            try:
                scores, ids = self._index.search(q, k, params=params)
            finally:
                faiss.omp_set_num_threads(threads)
        del keep_alive  # the bitmap must outlive the search that reads it
        return [
            VectorHit(int(i), float(s))
            for i, s in zip(ids[0], scores[0], strict=True)
            if i != -1
        ]

    def _params(self, faiss, selector, n_allowed: int | None):
        if not _is_ivf(self._index):
            return None if selector is None else faiss.SearchParameters(sel=selector)
        nlist = int(self._index.nlist)
        nprobe = int(self._index.nprobe)
        if n_allowed is not None:
            if n_allowed <= FILTER_EXACT_LIMIT:
                nprobe = nlist  # every cell; only the allowed vectors are scored
            else:
                # The k best allowed photos lie deeper in the ranking than the k best
                # overall, so look at proportionally more cells.
                share = n_allowed / max(1, self.size)
                nprobe = min(nlist, int(np.ceil(nprobe / max(share, 1e-9) ** 0.5)))
        if selector is None:
            return faiss.SearchParametersIVF(nprobe=nprobe)
        return faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)

    def reconstruct(self, photo_id: int) -> np.ndarray | None:
        try:
            with self._lock:
                if _is_ivf(self._index) and self._index.direct_map.type == 0:
                    self._index.set_direct_map_type(_faiss().DirectMap.Hashtable)
                return self._index.reconstruct(int(photo_id))
        except RuntimeError:
            return None


def _is_ivf(index) -> bool:
    return hasattr(index, "nlist") and hasattr(index, "nprobe")


def ivf_lists(count: int) -> int:
    """Number of inverted-file cells for ``count`` vectors (about sqrt(count))."""
    return max(_IVF_MIN_LISTS, int(round(count**0.5)))


def ivf_probes(lists: int) -> int:
    """Cells visited per query. It depends on the cells only: their number is chosen for
    the size the index was trained for, and while the library stays within
    _IVF_RETRAIN_FACTOR of it, each probed cell holds the same share of the photos."""
    return min(lists, max(_IVF_MIN_PROBES, int(round(lists * _IVF_PROBE_SHARE))))


def layout_problem(
    kind: str, trained_for: int | None, count: int, exact_limit: int = EXACT_LIMIT
) -> str | None:
    """Why an index of ``kind`` should be rebuilt rather than updated to hold ``count``
    vectors, or None when an update in place keeps it as good as a fresh build."""
    if kind == "exact":
        if count > exact_limit:
            return f"{count:,} photos is above {exact_limit:,}: switching to the approximate index"
        return None
    if count <= exact_limit:
        return f"{count:,} photos is within {exact_limit:,}: switching to the exact index"
    if not trained_for:
        return "approximate index of unknown training size"
    if count > trained_for * _IVF_RETRAIN_FACTOR or count * _IVF_RETRAIN_FACTOR < trained_for:
        return f"cells were placed for {trained_for:,} photos, the library now has {count:,}"
    return None


def _build_ivf(batches, count: int, generation: int) -> VectorIndex | None:
    faiss = _faiss()
    lists = ivf_lists(count)
    wanted = lists * _IVF_TRAIN_PER_LIST
    stride = max(1, count // wanted)
    sample = [vectors[::stride] for _, vectors in batches()]
    if not sample:
        return None
    train = np.ascontiguousarray(np.vstack(sample)[:wanted], dtype=np.float32)
    dim = train.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.niter = _IVF_TRAIN_ITERATIONS
    ivf.cp.spherical = True  # unit centroids: cells are cones, as cosine search wants
    ivf.cp.max_points_per_centroid = _IVF_TRAIN_PER_LIST
    ivf.train(train)
    index = VectorIndex(ivf, generation, trained_for=count)
    del train, sample
    for ids, vectors in batches():
        index.add(ids, vectors)
    return index


def _selector(faiss, allowed: np.ndarray):
    """A FAISS ID selector for ``allowed`` and the buffer it reads (keep it alive).

    A bitmap over photo ids costs one bit per id up to the largest, is built by numpy in
    0.1-0.4 ms for 30k-300k ids, and is tested in constant time per vector; FAISS's
    hash-set selector (IDSelectorBatch) took 2.4 ms and 29 ms to build for those.
    """
    top = int(allowed.max())
    if int(allowed.min()) < 0 or top >= 1 << 34:  # ids that big would make a huge bitmap
        batch = np.ascontiguousarray(allowed)
        return faiss.IDSelectorBatch(batch), batch
    mask = np.zeros(top + 1, dtype=bool)
    mask[allowed] = True
    bits = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)), bits


@dataclass(frozen=True)
class _Stamp:
    """What the stamp file says about the index file next to it."""

    generation: int
    vectors: int
    kind: str
    trained_for: int | None
    file: tuple[int, int, int]  # (size, mtime_ns, inode) of the index file it describes

    @classmethod
    def parse(cls, text: str) -> _Stamp | None:
        try:
            data = json.loads(text)
            if data.get("format") != _STAMP_FORMAT:
                return None
            file = data["file"]
            trained_for = data.get("trained_for")
            return cls(int(data["generation"]), int(data["vectors"]), str(data["kind"]),
                       None if trained_for is None else int(trained_for),
                       (int(file["size"]), int(file["mtime_ns"]), int(file["inode"])))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def _resave_at(size: int) -> int:
    """Changed photos after which an updated index is worth writing back to its file."""
    return max(_RESAVE_MIN, int(size * _RESAVE_SHARE))


def _identity(path: Path | str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


class VectorStore:
    """Loads, updates, saves and rebuilds the index file of one library.

    Several processes may use one library (the web app, a `kezhao index` run): each save
    replaces the file and then its stamp atomically, and the stamp names the exact file it
    describes (size, mtime, inode), so a reader never trusts a file with another writer's
    stamp — at worst it rebuilds. Whichever complete, correctly stamped file is written last
    wins.
    """

    def __init__(self, path: Path, *, exact_limit: int = EXACT_LIMIT) -> None:
        self.path = Path(path)
        self.stamp_path = self.path.with_name(self.path.name + ".json")
        self.exact_limit = exact_limit

    def _read_stamp(self) -> _Stamp | None:
        try:
            return _Stamp.parse(self.stamp_path.read_text())
        except OSError:
            return None

    def load(self, catalog: Catalog) -> tuple[VectorIndex | None, IndexHealth]:
        """Open the index for the catalog's current state: as saved when up to date,
        updated in place when stale (and saved once enough changed), rebuilt when it
        cannot be trusted or updated. Returns None when the library has no vectors yet."""
        index, problem = self._read()
        if index is not None:
            result, problem = self._catch_up(index, catalog, save=True)  # if worth it
            if result is not None:
                return result
        return self._rebuild_for(catalog, problem)

    def refresh(
        self, index: VectorIndex | None, catalog: Catalog
    ) -> tuple[VectorIndex | None, IndexHealth]:
        """Bring an index already in memory up to date, in place, without reading or
        writing the file (a search service after a photo was trashed or indexed: the
        file is another process's to save, and a stale one is updated when next loaded).
        Falls back to :meth:`load` when the index cannot be updated."""
        if index is None:
            return self.load(catalog)
        result, problem = self._catch_up(index, catalog, save=False)
        if result is not None:
            return result
        log.info("reloading vector index: %s", problem)
        return self.load(catalog)

    def sync(self, catalog: Catalog) -> IndexHealth:
        """Leave a file that every later load can use cheaply, for the end of an indexing
        run: rebuilt when it is missing, unusable or no longer fits the library's size,
        updated and saved once enough changed; a few changes are only counted (each load
        applies them from the catalog in milliseconds), so the file is not read at all."""
        stamp = self._read_stamp()
        if stamp is None or stamp.file != _identity(self.path):
            return self.load(catalog)[1]
        changes = catalog.vector_changes_since(stamp.generation, 0)  # ids only
        if changes.mark == stamp.generation:
            return IndexHealth("ok", stamp.vectors, stamp.generation, "up to date")
        lag = len(changes.changed)
        if (
            changes.rebuild_requested
            or changes.searchable == 0
            or lag >= _resave_at(stamp.vectors)
            or layout_problem(stamp.kind, stamp.trained_for, changes.searchable,
                              self.exact_limit) is not None
        ):
            return self.load(catalog)[1]
        return IndexHealth("ok", stamp.vectors, stamp.generation,
                           f"file is {lag:,} changed photos behind; loads apply them")

    def _read(self) -> tuple[VectorIndex | None, str]:
        """The saved index with its stamp's mark, or None and why not."""
        if not self.path.exists():
            return None, "index file missing"
        for attempt in range(3):
            if attempt:
                time.sleep(0.05)  # another process may be between writing file and stamp
            stamp = self._read_stamp()
            if stamp is None:
                return None, "index file has no usable stamp"
            before = _identity(self.path)
            if before != stamp.file:
                continue
            try:
                raw = _faiss().read_index(str(self.path))
            except RuntimeError as err:  # FAISS reports unreadable files this way
                return None, f"index file unreadable ({str(err).splitlines()[0][:80]})"
            if _identity(self.path) != before:
                continue  # replaced while we read it: read the new one
            if raw.ntotal != stamp.vectors:
                return None, "index file does not match its stamp"
            return VectorIndex(raw, stamp.generation, stamp.trained_for), ""
        return None, "index file and stamp do not belong together"

    def _catch_up(
        self, index: VectorIndex, catalog: Catalog, *, save: bool
    ) -> tuple[tuple[VectorIndex, IndexHealth] | None, str]:
        """Apply the catalog's changes since the index's mark; (result, "") or (None, why
        it must be rebuilt instead)."""
        with index._lock:  # one update at a time; searches wait instead of seeing half
            return self._catch_up_locked(index, catalog, save=save)

    def _catch_up_locked(
        self, index: VectorIndex, catalog: Catalog, *, save: bool
    ) -> tuple[tuple[VectorIndex, IndexHealth] | None, str]:
        limit = max(_SYNC_MIN_CHANGES, int(index.size * _SYNC_MAX_SHARE))
        changes = catalog.vector_changes_since(index.generation, limit)
        if changes.searchable == 0:
            return None, "no searchable photos"
        if changes.rebuild_requested:
            return None, "a rebuild was requested"
        if not changes.complete:
            return None, f"{len(changes.changed):,} photos changed since the index was saved"
        if changes.mark == index.generation:
            if index.size == changes.searchable:
                return (index, IndexHealth("ok", index.size, index.generation, "up to date")), ""
            return None, "index file does not match the catalog"
        problem = layout_problem(index.kind, index.trained_for, changes.searchable,
                                 self.exact_limit)
        if problem is not None:
            return None, problem
        try:
            index.apply(changes)
        except (ValueError, RuntimeError) as err:
            problem = f"cannot update the index ({str(err).splitlines()[0][:80]})"
        else:
            if index.size == changes.searchable:
                problem = ""
            else:
                problem = (f"updated index holds {index.size:,} vectors, the catalog "
                           f"{changes.searchable:,}")
        if problem:
            index.generation = -1  # matches no catalog: whoever holds it reloads
            log.warning("vector index: %s; rebuilding", problem)
            return None, problem
        detail = f"{len(changes.changed):,} changed photos updated in place"
        if save and len(changes.changed) >= _resave_at(index.size):
            self.save(index)
            detail += ", file saved"
        return (index, IndexHealth("updated", index.size, index.generation, detail)), ""

    def _rebuild_for(
        self, catalog: Catalog, problem: str
    ) -> tuple[VectorIndex | None, IndexHealth]:
        if catalog.searchable_count() == 0:
            generation = catalog.vectors_generation()
            return None, IndexHealth("empty", 0, generation, "no photos indexed yet")
        log.info("rebuilding vector index: %s", problem)
        index = self.rebuild(catalog)
        return index, IndexHealth("rebuilt", index.size, index.generation, problem)

    def rebuild(self, catalog: Catalog, *, exact_limit: int | None = None) -> VectorIndex:
        """Build the index from the catalog's embeddings (exact or approximate by size).

        The mark is read before the vectors: whatever changes while they are read has a
        later mark, so the next update in place applies it again (harmlessly, if the
        rebuild already saw it) and nothing is missed.
        """
        generation = catalog.vectors_generation()
        index = VectorIndex.from_batches(
            catalog.iter_embeddings,
            catalog.searchable_count(),
            generation,
            exact_limit=self.exact_limit if exact_limit is None else exact_limit,
        )
        if index is None:
            raise ValueError("nothing to index")
        self.save(index)
        return index

    def save(self, index: VectorIndex) -> None:
        """Write atomically: a reader sees the old file or the new one, never half; then
        the stamp naming that very file (a reader checks it before trusting the file)."""
        faiss = _faiss()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".vectors-", dir=self.path.parent)
        os.close(fd)
        try:
            with index._lock:
                faiss.write_index(index._index, tmp)
                size, generation = index.size, index.generation
            identity = _identity(tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        assert identity is not None
        stamp = {
            "format": _STAMP_FORMAT,
            "generation": generation,
            "vectors": size,
            "kind": index.kind,
            "trained_for": index.trained_for,
            "file": {"size": identity[0], "mtime_ns": identity[1], "inode": identity[2]},
        }
        fd, tmp = tempfile.mkstemp(prefix=".vectors-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(stamp, fh)
            os.replace(tmp, self.stamp_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
