"""The vector index is updated in place after a change, and is then exactly what a full
rebuild from the catalog would give. Real runs use the tiny test model, whose vectors have
NO semantics: they only matter as entries that must leave, change and re-enter the index.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlite_utils import Database

from indexer.catalog import PhotoRecord
from indexer.library import open_library
from indexer.pipeline import index_paths
from indexer.schema import build_migrations
from indexer.trash import empty_trash, restore, trash_photo
from indexer.vectors import VectorIndex, VectorStore, layout_problem
from search.query import SearchService
from tests.conftest import write_photo

DIM = 32


def _unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _save(library, vectors: np.ndarray, start: int = 0) -> list[int]:
    rows = [
        (PhotoRecord(path=f"/photos/{start + i}.jpg", root_id=None, size=1, mtime_ns=1,
                     content_hash=f"h{start + i}", client="客户"), vector)
        for i, vector in enumerate(vectors)
    ]
    return library.catalog.save_photos(rows, "synthetic")


def _trash_in_catalog(library, photo_id: int) -> int:
    """Put a photo in the trash as far as the catalog knows (the file is not ours here)."""
    catalog = library.catalog
    trash_id = catalog.journal_trash(photo_id, f"/photos/{photo_id}.jpg", "trash/x", 1, "h",
                                     "test")
    catalog.finish_trash(trash_id)
    return trash_id


def _refuse_rebuilds(monkeypatch) -> None:
    """From here on, fail the test if anything rebuilds the index from scratch."""
    def refuse(self, catalog, **kwargs):
        raise AssertionError("the index was rebuilt instead of updated in place")

    monkeypatch.setattr(VectorStore, "rebuild", refuse)


def _rebuilt(library, tmp_path: Path, exact_limit: int = 100_000) -> VectorIndex:
    """A fresh full rebuild of the same catalog, in a file of its own."""
    fresh = VectorStore(tmp_path / f"fresh-{os.urandom(4).hex()}.faiss",
                        exact_limit=exact_limit)
    return fresh.rebuild(library.catalog)


def _same_results(a: VectorIndex, b: VectorIndex, queries: np.ndarray, k: int = 10) -> None:
    assert a.size == b.size
    for query in queries:
        hits_a, hits_b = a.search(query, k), b.search(query, k)
        assert [h.photo_id for h in hits_a] == [h.photo_id for h in hits_b]
        np.testing.assert_allclose([h.score for h in hits_a], [h.score for h in hits_b],
                                   rtol=0, atol=1e-6)


# --- through the real pipeline and trash ---------------------------------------------


@pytest.fixture
def indexed(tmp_path, library, tiny_encoder):
    root = tmp_path / "photos"
    for seed in range(8):
        write_photo(root / "客户甲" / "会议" / f"p{seed}.jpg", seed=seed)
    index_paths(library, tiny_encoder, [root])
    index, health = library.vectors.load(library.catalog)
    assert health.state == "ok" and index.size == 8
    return root


def _queries(library, n: int = 6) -> np.ndarray:
    dim = library.vectors.load(library.catalog)[0].dim
    return _unit(np.random.default_rng(5), n, dim)


def _id(library, path: Path) -> int:
    photo_id = library.catalog.photo_id_for_path(str(path))
    assert photo_id is not None
    return photo_id


@pytest.mark.parametrize(
    "change", ["trash", "restore", "empty", "new content", "add", "delete files", "move"]
)
def test_every_change_updates_the_index_in_place_like_a_rebuild(
    change, indexed, library, tiny_encoder, tmp_path, monkeypatch
):
    root = indexed
    folder = root / "客户甲" / "会议"
    target = folder / "p3.jpg"
    if change == "restore":
        entry = trash_photo(library, _id(library, target), "test")
        library.vectors.load(library.catalog)  # the index without it, saved
    _refuse_rebuilds(monkeypatch)
    if change == "trash":
        trash_photo(library, _id(library, target), "test")
    elif change == "restore":
        restore(library, entry.id)
    elif change == "empty":  # trashed and deleted for good before the index saw either
        trash_photo(library, _id(library, target), "test")
        assert len(empty_trash(library, timedelta(0))) == 1
    else:
        if change == "new content":
            write_photo(target, seed=99)  # same path, other pixels
        elif change == "add":
            for seed in (20, 21, 22):
                write_photo(folder / f"new{seed}.jpg", seed=seed)
        elif change == "delete files":
            (folder / "p1.jpg").unlink()
            (folder / "p2.jpg").unlink()
        elif change == "move":
            shutil.move(folder / "p4.jpg", root / "客户甲" / "p4-moved.jpg")
        summary = index_paths(library, tiny_encoder, [root])
        assert summary.changed_anything

    index, health = library.vectors.load(library.catalog)

    # A move keeps the photo's id and vector: nothing for the index to do.
    assert health.state == ("ok" if change == "move" else "updated"), health
    assert index.generation == library.catalog.vectors_generation()
    assert index.size == library.catalog.searchable_count()
    monkeypatch.undo()
    _same_results(index, _rebuilt(library, tmp_path), _queries(library))


def test_search_service_follows_trash_and_restore_without_reloading(
    indexed, library, tiny_encoder, monkeypatch
):
    service = SearchService(library, lambda: tiny_encoder)
    photo_id = _id(library, indexed / "客户甲" / "会议" / "p5.jpg")
    assert photo_id in {h.photo.id for h in service.by_text("x", k=50)}
    monkeypatch.setattr(VectorStore, "load", lambda *a: pytest.fail("reloaded the file"))

    entry = trash_photo(library, photo_id, "test")
    assert photo_id not in {h.photo.id for h in service.by_text("x", k=50)}
    assert service.health.state == "updated" and service.vector_index().size == 7

    restore(library, entry.id)
    assert photo_id in {h.photo.id for h in service.by_text("x", k=50)}
    assert service.vector_index().size == 8


def test_file_is_rewritten_only_once_enough_changed(
    indexed, library, tiny_encoder, monkeypatch
):
    folder = indexed / "客户甲" / "会议"
    write_photo(folder / "new1.jpg", seed=31)
    before = library.vectors.stamp_path.read_text()
    index_paths(library, tiny_encoder, [indexed])
    assert library.vectors.stamp_path.read_text() == before  # one photo: file left behind
    assert library.vectors.load(library.catalog)[1].state == "updated"

    monkeypatch.setattr("indexer.vectors._RESAVE_MIN", 2)
    write_photo(folder / "new2.jpg", seed=32)
    index_paths(library, tiny_encoder, [indexed])  # two behind now: the run saves the file
    assert library.vectors.stamp_path.read_text() != before
    index, health = library.vectors.load(library.catalog)
    assert health.state == "ok" and index.size == 10

    trash_photo(library, _id(library, folder / "new1.jpg"), "test")
    trash_photo(library, _id(library, folder / "new2.jpg"), "test")
    assert "saved" in library.vectors.load(library.catalog)[1].detail  # a load saves too
    assert library.vectors.load(library.catalog)[1].state == "ok"


def test_unchanged_rerun_leaves_the_index_file_alone(indexed, library, tiny_encoder):
    before = library.vectors.path.stat().st_mtime_ns, library.vectors.stamp_path.read_text()
    index_paths(library, tiny_encoder, [indexed])
    after = library.vectors.path.stat().st_mtime_ns, library.vectors.stamp_path.read_text()
    assert after == before


# --- synthetic vectors: many changes at once, exact and approximate --------------------


def test_mixed_changes_on_exact_index_equal_a_rebuild(library, tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    ids = _save(library, _unit(rng, 2000))
    store = VectorStore(library.vectors.path)
    assert store.load(library.catalog)[1].state == "rebuilt"  # no file yet
    _refuse_rebuilds(monkeypatch)

    _save(library, _unit(rng, 300), start=len(ids))                     # new photos
    _save(library, _unit(rng, 50), start=0)                             # new content
    for photo_id in ids[100:140]:
        _trash_in_catalog(library, photo_id)                            # trashed
    library.catalog.mark_missing(ids[200:230])                          # files gone
    library.catalog.touch_photo(ids[205], 1, 1)                         # ...one came back

    index, health = store.load(library.catalog)

    assert health.state == "updated" and index.kind == "exact"
    assert index.size == library.catalog.searchable_count() == 2000 + 300 - 40 - 29
    monkeypatch.undo()
    _same_results(index, _rebuilt(library, tmp_path), _unit(rng, 20))
    # Too few changes to rewrite the file: the next load applies them again, same result.
    again, health = VectorStore(library.vectors.path).load(library.catalog)
    assert health.state == "updated" and "saved" not in health.detail
    _same_results(again, index, _unit(rng, 5))


def test_approximate_index_keeps_its_cells_and_stays_exact_in_scores(library, tmp_path):
    rng = np.random.default_rng(2)
    ids = _save(library, _unit(rng, 3000))
    store = VectorStore(library.vectors.path, exact_limit=500)
    built = store.rebuild(library.catalog)
    assert built.kind == "approximate" and built.trained_for == 3000
    centroids = built._index.quantizer.reconstruct_n(0, built._index.nlist)

    _save(library, _unit(rng, 1000), start=len(ids))
    _save(library, _unit(rng, 100), start=0)
    for photo_id in ids[500:600]:
        _trash_in_catalog(library, photo_id)

    index, health = store.load(library.catalog)

    assert health.state == "updated" and index.kind == "approximate"
    assert index.trained_for == 3000 and index.size == 3900
    np.testing.assert_array_equal(
        index._index.quantizer.reconstruct_n(0, index._index.nlist), centroids)
    # Visiting every cell, the updated inverted file is an exact search: same answers as
    # brute force over the catalog's current vectors.
    cat_ids, vectors = zip(*library.catalog.iter_embeddings(), strict=True)
    cat_ids, vectors = np.concatenate(cat_ids), np.vstack(vectors)
    index._index.nprobe = index._index.nlist
    for query in _unit(rng, 10):
        scores = vectors @ query
        order = np.argsort(-scores)[:10]
        hits = index.search(query, 10)
        assert [h.photo_id for h in hits] == cat_ids[order].tolist()
        np.testing.assert_allclose([h.score for h in hits], scores[order], atol=1e-5)


def test_crossing_the_exact_limit_rebuilds_as_approximate(library):
    rng = np.random.default_rng(3)
    ids = _save(library, _unit(rng, 400))
    store = VectorStore(library.vectors.path, exact_limit=500)
    assert store.load(library.catalog)[0].kind == "exact"

    _save(library, _unit(rng, 200), start=len(ids))
    index, health = store.load(library.catalog)

    assert health.state == "rebuilt" and "above 500" in health.detail
    assert index.kind == "approximate" and index.trained_for == 600

    for photo_id in ids[:150]:
        _trash_in_catalog(library, photo_id)
    index, health = store.load(library.catalog)
    assert health.state == "rebuilt" and index.kind == "exact" and index.size == 450


def test_approximate_index_is_retrained_when_the_library_doubles(library):
    rng = np.random.default_rng(4)
    _save(library, _unit(rng, 1000))
    store = VectorStore(library.vectors.path, exact_limit=500)
    store.rebuild(library.catalog)
    _save(library, _unit(rng, 900), start=1000)
    assert store.load(library.catalog)[1].state == "updated"  # 1900 ≤ 2 × 1000
    _save(library, _unit(rng, 200), start=1900)
    index, health = store.load(library.catalog)
    assert health.state == "rebuilt" and index.trained_for == 2100


@pytest.mark.parametrize(
    ("kind", "trained_for", "count", "rebuild"),
    [
        ("exact", None, 100_000, False),
        ("exact", None, 100_001, True),
        ("approximate", 300_000, 100_000, True),
        ("approximate", 300_000, 150_000, False),
        ("approximate", 300_000, 149_999, True),
        ("approximate", 300_000, 600_000, False),
        ("approximate", 300_000, 600_001, True),
        ("approximate", None, 300_000, True),
    ],
)
def test_layout_rule(kind, trained_for, count, rebuild):
    assert (layout_problem(kind, trained_for, count) is not None) == rebuild


# --- files that cannot be trusted -----------------------------------------------------


@pytest.mark.parametrize("damage", ["no stamp", "old stamp", "bad stamp", "other file"])
def test_untrusted_stamp_means_a_rebuild_with_the_same_results(library, tmp_path, damage):
    rng = np.random.default_rng(6)
    _save(library, _unit(rng, 300))
    store = library.vectors
    index, _ = store.load(library.catalog)
    query = _unit(rng, 1)[0]
    before = index.search(query, 10)
    if damage == "no stamp":
        store.stamp_path.unlink()
    elif damage == "old stamp":  # as written before in-place updates existed
        store.stamp_path.write_text(json.dumps({"generation": index.generation,
                                                "vectors": index.size}))
    elif damage == "bad stamp":
        store.stamp_path.write_text("{not json")
    else:  # another writer's file under this stamp (two processes saving at once)
        stamp = store.stamp_path.read_text()
        _save(library, _unit(rng, 5), start=300)
        store.save(store.load(library.catalog)[0])
        store.stamp_path.write_text(stamp)
    index, health = store.load(library.catalog)
    assert health.state == "rebuilt"
    if damage != "other file":
        assert index.search(query, 10) == before
    assert index.size == library.catalog.searchable_count()
    assert store.load(library.catalog)[1].state == "ok"


def test_requested_rebuild_is_honoured(library):
    _save(library, _unit(np.random.default_rng(7), 50))
    library.vectors.load(library.catalog)
    library.catalog.bump_vectors_generation()
    assert library.vectors.load(library.catalog)[1].state == "rebuilt"
    assert library.vectors.load(library.catalog)[1].state == "ok"


def test_two_writers_racing_leave_a_correct_file(library, tmp_path):
    """Both processes load the same stale file and update it; whichever saves last, the
    file is complete and stamped with what it holds, so the next load is exact."""
    rng = np.random.default_rng(8)
    _save(library, _unit(rng, 500))
    library.vectors.load(library.catalog)
    _save(library, _unit(rng, 20), start=500)
    first, _ = VectorStore(library.vectors.path).load(library.catalog)
    _save(library, _unit(rng, 20), start=520)
    second, _ = VectorStore(library.vectors.path).load(library.catalog)
    # The slower writer, still at the older mark, saves last.
    VectorStore(library.vectors.path).save(first)
    index, health = library.vectors.load(library.catalog)
    assert health.state == "updated" and index.size == 540
    _same_results(index, _rebuilt(library, tmp_path), _unit(rng, 10))


def test_a_library_from_before_in_place_updates_migrates(tmp_path):
    """An older catalog (no change log) and its index file as they were written then."""
    root = tmp_path / "old-library"
    root.mkdir()
    db = Database(root / "catalog.db")
    build_migrations().apply(db, stop_before="0006_vector_changes")
    rng = np.random.default_rng(9)
    vectors = _unit(rng, 40)
    db["meta"].insert_all([{"key": "vectors_generation", "value": "3"},
                           {"key": "model_id", "value": "synthetic"}])
    for i in range(1, len(vectors) + 1):
        db["photos"].insert({"id": i, "path": f"/old/{i}.jpg", "size": 1, "mtime_ns": 1,
                             "content_hash": f"h{i}", "status": "ok", "indexed_at": "2024"})
        db["embeddings"].insert({"photo_id": i, "model_id": "synthetic", "dim": DIM,
                                 "vector": vectors[i - 1].tobytes()})
    db.close()
    old = VectorIndex.empty(DIM)
    old.add(np.arange(1, 41), vectors)
    import faiss

    faiss.write_index(old._index, str(root / "vectors.faiss"))
    (root / "vectors.faiss.json").write_text(json.dumps({"generation": 3, "vectors": 40}))

    library = open_library(root)
    try:
        assert "0006_vector_changes" in library.catalog.schema_migrations()
        index, health = library.vectors.load(library.catalog)
        assert health.state == "rebuilt" and index.size == 40  # old stamp: rebuilt once
        _trash_in_catalog(library, 7)
        library.catalog.mark_missing([8])
        index, health = library.vectors.load(library.catalog)
        assert health.state == "updated" and index.size == 38
        assert {h.photo_id for h in index.search(vectors[6], 40)}.isdisjoint({7, 8})
    finally:
        library.close()


def test_end_of_run_sync_rebuilds_when_the_layout_must_change(library):
    rng = np.random.default_rng(10)
    _save(library, _unit(rng, 400))
    store = VectorStore(library.vectors.path, exact_limit=500)
    store.load(library.catalog)
    _save(library, _unit(rng, 50), start=400)
    health = store.sync(library.catalog)
    assert health.state == "ok" and "50 changed photos behind" in health.detail
    _save(library, _unit(rng, 100), start=450)
    health = store.sync(library.catalog)
    assert health.state == "rebuilt" and health.vectors == 550
    assert store.load(library.catalog)[0].kind == "approximate"


def test_an_update_that_does_not_add_up_falls_back_to_a_rebuild(library, monkeypatch, caplog):
    from dataclasses import replace

    from indexer.catalog import Catalog

    rng = np.random.default_rng(11)
    ids = _save(library, _unit(rng, 200))
    library.vectors.load(library.catalog)
    for photo_id in ids[:3]:
        _trash_in_catalog(library, photo_id)
    real = Catalog.vector_changes_since

    def forgetful(self, since, limit):  # a change log that lost one trashed photo
        changes = real(self, since, limit)
        return replace(changes, changed=changes.changed[1:])

    monkeypatch.setattr(Catalog, "vector_changes_since", forgetful)
    with caplog.at_level("WARNING", logger="indexer.vectors"):
        index, health = library.vectors.load(library.catalog)
    assert health.state == "rebuilt" and index.size == 197
    assert ids[0] not in {h.photo_id for h in index.search(_unit(rng, 1)[0], 200)}
    assert [r.message for r in caplog.records if r.levelname == "WARNING"] == [
        "vector index: updated index holds 198 vectors, the catalog 197; rebuilding"]
