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


# --- the approximate index, checked against brute force ----------------------------------


def _clustered(rng: np.random.Generator, n: int, dim: int = 64, scenes: int = 400):
    """Unit vectors shaped like a photo library's embeddings: a shared cone, scenes of
    similar shots (cosine ~0.85 within a scene, ~0.5 across), plus each photo's own part."""
    def unit(x):
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    cone = unit(rng.normal(size=dim))
    centres = unit(rng.normal(size=(scenes, dim)))
    scene = rng.integers(0, scenes, n)
    vectors = unit(0.7 * cone + 0.6 * centres[scene] + 0.4 * unit(rng.normal(size=(n, dim))))
    return vectors, cone, centres


def _text_like(rng, cone, centres, m):
    """Queries that match a scene only weakly, as text queries do."""
    dim = cone.shape[0]
    pick = centres[rng.integers(0, len(centres), m)]
    noise = rng.normal(size=(m, dim))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = 0.3 * cone + 0.4 * pick + 0.85 * noise
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def _brute_force(vectors, ids, query, k, allowed=None):
    mask = np.ones(len(ids), bool) if allowed is None else np.isin(ids, allowed)
    scores = vectors[mask] @ query
    order = np.argsort(-scores)[:k]
    return ids[mask][order], scores[order]


def _recall(hits, expected) -> float:
    return len({h.photo_id for h in hits} & set(expected.tolist())) / len(expected)


@pytest.fixture(scope="module")
def approximate():
    rng = np.random.default_rng(7)
    vectors, cone, centres = _clustered(rng, 20_000, dim=256)
    ids = np.arange(5, 20_005, dtype=np.int64)
    chunks = [(ids[i:i + 3000], vectors[i:i + 3000]) for i in range(0, len(ids), 3000)]
    index = VectorIndex.from_batches(lambda: iter(chunks), len(ids), exact_limit=1000)
    return index, ids, vectors, cone, centres


def test_large_index_is_approximate_with_high_recall_and_exact_scores(approximate):
    index, ids, vectors, cone, centres = approximate
    assert index.kind == "approximate" and index.size == len(ids)
    rng = np.random.default_rng(8)
    photo_queries = vectors[rng.integers(0, len(ids), 30)]
    recalls = []
    for query in [*photo_queries, *_text_like(rng, cone, centres, 30)]:
        hits = index.search(query, 10)
        expected, _ = _brute_force(vectors, ids, query, 10)
        recalls.append(_recall(hits, expected))
        rows = [int(h.photo_id) - 5 for h in hits]
        np.testing.assert_allclose([h.score for h in hits], vectors[rows] @ query, rtol=1e-5)
    assert np.mean(recalls) >= 0.95, recalls


def test_small_client_on_approximate_index_is_exact(approximate):
    index, ids, vectors, cone, centres = approximate
    rng = np.random.default_rng(9)
    for query in _text_like(rng, cone, centres, 10):
        allowed = np.sort(rng.choice(ids, size=200, replace=False))
        hits = index.search(query, 10, allowed)
        expected, scores = _brute_force(vectors, ids, query, 10, allowed)
        assert [h.photo_id for h in hits] == expected.tolist()
        np.testing.assert_allclose([h.score for h in hits], scores, rtol=1e-5)


def test_large_client_on_approximate_index_keeps_recall(approximate):
    index, ids, vectors, cone, centres = approximate
    rng = np.random.default_rng(10)
    allowed = np.sort(rng.choice(ids, size=6000, replace=False))  # 30% of the library
    recalls = []
    for query in _text_like(rng, cone, centres, 20):
        hits = index.search(query, 10, allowed)
        assert set(h.photo_id for h in hits) <= set(allowed.tolist())
        recalls.append(_recall(hits, _brute_force(vectors, ids, query, 10, allowed)[0]))
    assert np.mean(recalls) >= 0.95, recalls


def test_lone_photo_is_found_on_approximate_index(approximate):
    index, ids, vectors, _, _ = approximate
    hits = index.search(-vectors[123], 3, np.array([ids[123]]))
    assert [h.photo_id for h in hits] == [ids[123]]
    np.testing.assert_allclose(index.reconstruct(int(ids[123])), vectors[123])
    assert index.reconstruct(10**9) is None


def test_approximate_index_file_round_trips(library):
    rng = np.random.default_rng(11)
    vectors, _, _ = _clustered(rng, 3000, dim=DIM)
    ids = _fill(library, vectors, ["A"] * 3000)
    built = library.vectors.rebuild(library.catalog, exact_limit=500)
    assert built.kind == "approximate"
    loaded, health = library.vectors.load(library.catalog)
    assert health.state == "ok" and loaded.kind == "approximate"
    query = vectors[42]
    assert loaded.search(query, 10) == built.search(query, 10)
    assert loaded.search(query, 1)[0].photo_id == ids[42]
