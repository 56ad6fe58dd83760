"""The FAISS vector index: a cache of the catalog's embeddings, never the source of truth.

`vectors.faiss` is written to a temporary file and renamed into place, next to a small
`vectors.faiss.json` stamp holding the catalog generation it was built from. Whenever
the file is missing, unreadable, or its stamp disagrees with the catalog, the index is
rebuilt from the embeddings in catalog.db — photos are never decoded again for this.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.catalog import Catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VectorHit:
    photo_id: int
    score: float


@dataclass(frozen=True)
class IndexHealth:
    state: str  # ok | rebuilt | empty
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

    def __init__(self, index, generation: int) -> None:
        self._index = index
        self.generation = generation
        self._lock = threading.Lock()

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
    return min(lists, max(_IVF_MIN_PROBES, int(round(lists * _IVF_PROBE_SHARE))))


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
    ivf.nprobe = ivf_probes(lists)
    index = VectorIndex(ivf, generation)
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


class VectorStore:
    """Loads, saves and rebuilds the index file of one library."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.stamp_path = self.path.with_name(self.path.name + ".json")

    def _read_stamp(self) -> dict | None:
        try:
            return json.loads(self.stamp_path.read_text())
        except (OSError, ValueError):
            return None

    def load(self, catalog: Catalog) -> tuple[VectorIndex | None, IndexHealth]:
        """Open the index for the catalog's current generation, rebuilding it when the
        file cannot be trusted. Returns None when the library has no vectors yet."""
        generation = catalog.vectors_generation()
        expected = catalog.searchable_count()
        stamp = self._read_stamp()
        problem = None
        if not self.path.exists():
            problem = "index file missing"
        elif stamp is None or stamp.get("generation") != generation:
            problem = "index file is stale"
        else:
            try:
                index = VectorIndex(_faiss().read_index(str(self.path)), generation)
            except RuntimeError as err:  # FAISS reports unreadable files this way
                problem = f"index file unreadable ({str(err).splitlines()[0][:80]})"
            else:
                if index.size == expected and stamp.get("vectors") == expected:
                    return index, IndexHealth("ok", index.size, generation, "up to date")
                problem = "index file does not match the catalog"
        if expected == 0:
            return None, IndexHealth("empty", 0, generation, "no photos indexed yet")
        log.info("rebuilding vector index: %s", problem)
        index = self.rebuild(catalog)
        return index, IndexHealth("rebuilt", index.size, index.generation, problem)

    def rebuild(self, catalog: Catalog, *, exact_limit: int = EXACT_LIMIT) -> VectorIndex:
        """Build the index from the catalog's embeddings (exact or approximate by size)."""
        index = VectorIndex.from_batches(
            catalog.iter_embeddings,
            catalog.searchable_count(),
            catalog.vectors_generation(),
            exact_limit=exact_limit,
        )
        if index is None:
            raise ValueError("nothing to index")
        self.save(index)
        return index

    def save(self, index: VectorIndex) -> None:
        """Write atomically: a reader sees the old file or the new one, never half."""
        faiss = _faiss()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".vectors-", dir=self.path.parent)
        os.close(fd)
        try:
            faiss.write_index(index._index, tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        stamp = {"generation": index.generation, "vectors": index.size}
        fd, tmp = tempfile.mkstemp(prefix=".vectors-", dir=self.path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(stamp, fh)
        os.replace(tmp, self.stamp_path)
