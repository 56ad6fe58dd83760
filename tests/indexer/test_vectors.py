"""The FAISS index: filtered search checked against brute force, and self-healing files."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.catalog import PhotoFilter, PhotoRecord
from indexer.vectors import VectorIndex

DIM = 32


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _fill(library, vectors: np.ndarray, clients: list[str]) -> list[int]:
    rows = [
        (PhotoRecord(path=f"/photos/{i}.jpg", root_id=None, size=1, mtime_ns=1,
                     content_hash=f"h{i}", client=clients[i]), vectors[i])
        for i in range(len(vectors))
    ]
    ids = library.catalog.save_photos(rows, "synthetic")
    library.catalog.bump_vectors_generation()
    return ids


def test_filtered_search_equals_brute_force():
    rng = np.random.default_rng(0)
    vectors = _unit(rng, 3000)
    ids = np.arange(100, 3100, dtype=np.int64)
    index = VectorIndex.empty(DIM)
    index.add(ids, vectors)
    for trial in range(20):
        query = _unit(rng, 1)[0]
        allowed = np.sort(rng.choice(ids, size=int(rng.integers(1, 600)), replace=False))
        hits = index.search(query, 10, allowed)
        mask = np.isin(ids, allowed)
        scores = vectors[mask] @ query
        expected = ids[mask][np.argsort(-scores)[:10]]
        assert [h.photo_id for h in hits] == expected.tolist(), trial
        np.testing.assert_allclose([h.score for h in hits], np.sort(scores)[::-1][:10],
                                   rtol=1e-5)


def test_lone_photo_of_small_client_is_first_hit(library):
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 10_001)
    clients = ["大客户"] * 10_000 + ["小客户"]
    ids = _fill(library, vectors, clients)
    index, _ = library.vectors.load(library.catalog)
    query = -vectors[-1]  # the worst possible match for the small client's only photo
    allowed = library.catalog.photo_ids_matching(PhotoFilter(client="小客户"))
    hits = index.search(query, 5, allowed)
    assert [h.photo_id for h in hits] == [ids[-1]]


@pytest.mark.parametrize("damage", ["delete", "truncate", "stale", "garbage"])
def test_damaged_index_file_is_rebuilt_with_same_results(library, damage):
    rng = np.random.default_rng(2)
    vectors = _unit(rng, 500)
    _fill(library, vectors, ["A"] * 500)
    index, health = library.vectors.load(library.catalog)
    assert health.state == "rebuilt"  # no file yet: built from the catalog
    query = _unit(rng, 1)[0]
    before = index.search(query, 10)
    path = library.vectors.path
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.write_bytes(b"not a faiss file" * 100)
    else:
        library.catalog.bump_vectors_generation()
    index, health = library.vectors.load(library.catalog)
    assert health.state == "rebuilt"
    assert index.search(query, 10) == before
    # And once rebuilt, the file is trusted again.
    assert library.vectors.load(library.catalog)[1].state == "ok"
