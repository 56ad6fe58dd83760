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


def _faiss():
    import faiss  # imported lazily: it costs start-up time every CLI command would pay

    return faiss


class VectorIndex:
    """In-memory FAISS index over L2-normalised vectors, keyed by photo id.

    Inner product on normalised vectors is cosine similarity, so scores are in [-1, 1].
    """

    def __init__(self, index, generation: int) -> None:
        self._index = index
        self.generation = generation
        self._lock = threading.Lock()

    @classmethod
    def empty(cls, dim: int, generation: int = 0) -> VectorIndex:
        faiss = _faiss()
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), generation)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self._lock:
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(ids, dtype=np.int64),
            )

    def search(
        self, query: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> list[VectorHit]:
        """Top-k by cosine; with `allowed_ids`, the filter is applied inside FAISS (an
        ID selector), so a small client's photos are found however many others exist."""
        if self.size == 0 or k <= 0:
            return []
        faiss = _faiss()
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        params = None
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return []
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
            params = faiss.SearchParameters(sel=selector)
            k = min(k, len(allowed_ids))
        k = min(k, self.size)
        with self._lock:
            scores, ids = self._index.search(q, k, params=params)
        return [
            VectorHit(int(i), float(s))
            for i, s in zip(ids[0], scores[0], strict=True)
            if i != -1
        ]

    def reconstruct(self, photo_id: int) -> np.ndarray | None:
        try:
            with self._lock:
                return self._index.reconstruct(int(photo_id))
        except RuntimeError:
            return None


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

    def rebuild(self, catalog: Catalog) -> VectorIndex:
        generation = catalog.vectors_generation()
        index: VectorIndex | None = None
        for ids, vectors in catalog.iter_embeddings():
            if index is None:
                index = VectorIndex.empty(vectors.shape[1], generation)
            index.add(ids, vectors)
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
