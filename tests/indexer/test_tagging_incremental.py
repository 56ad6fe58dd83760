"""Suggestions kept up to date without rereading the library: an index run scores only its
new photos against the stored calibration, a review click rescores only its tag, and the
outcome is what a full pass would give.

The tiny test model has NO semantics: which tag a photo gets means nothing here. These
tests are about consistency — the cheap paths must agree with the full one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from indexer import pipeline
from indexer.catalog import Catalog
from indexer.library import open_library
from indexer.pipeline import index_paths
from indexer.tagging import TagService
from tests.conftest import write_photo
from tests.indexer.test_tagging import small_vocabulary

BASE = 40


def add_photos(root: Path, first: int, count: int) -> None:
    for i in range(first, first + count):
        write_photo(root / "客户" / f"p{i:03d}.jpg", seed=1000 + i, size=(64, 48))


def index_quietly(library, encoder, root: Path, monkeypatch) -> list[int]:
    """Index without the suggestion hook, so a test can run the refresh itself."""
    with monkeypatch.context() as m:
        m.setattr(pipeline, "suggest_after_indexing", lambda *a, **k: None)
        return list(index_paths(library, encoder, [root], workers=1).photo_ids)


def pending(svc: TagService) -> dict[tuple[int, str], tuple[float, str]]:
    return {(s.photo_id, s.tag_key): (s.score, s.source) for s in svc.pending(limit=100_000)}


def decisions(svc: TagService, photo_ids: list[int], tag: str) -> dict[int, str]:
    """Accepted or rejected states of a tag on these photos."""
    return {i: s.state for i, s in svc.catalog.tag_states(photo_ids, tag).items()
            if s.state != "suggested"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    add_photos(folder, 0, BASE)
    return folder


@pytest.fixture
def reviewed(library, root, counting_encoder):
    """A calibrated library of BASE photos with generous thresholds (so photos do get
    suggestions) and a few reviews behind a learned classifier."""
    index_paths(library, counting_encoder, [root], workers=1)
    svc = TagService(library, lambda: counting_encoder, vocabulary=small_vocabulary())
    svc.edit_tag("meeting", threshold=0.0001, refresh=False)
    svc.edit_tag("document", threshold=0.05, refresh=False)
    svc.refresh()
    ids = sorted(p for p, _ in pending(svc))
    svc.accept(ids[:3], "product_showcase")
    svc.reject(ids[3:5], "product_showcase")
    svc.reject(ids[5:6], "meeting")
    return svc


def clone(library, tmp_path: Path, name: str):
    """An independent copy of the library as it is now (catalog included)."""
    library.catalog.close()
    dest = shutil.copytree(library.root, tmp_path / name)
    return open_library(dest)


def test_new_photos_get_what_a_full_refresh_would_give_them(reviewed, root, tmp_path,
                                                            counting_encoder, monkeypatch):
    library = reviewed.library
    add_photos(root, BASE, 3)  # 7.5% more: the stored calibration still holds
    new_ids = index_quietly(library, counting_encoder, root, monkeypatch)
    assert len(new_ids) == 3
    reviews = decisions(reviewed, list(range(1, 8)), "product_showcase")
    incremental_lib, full_lib = clone(library, tmp_path, "a"), clone(library, tmp_path, "b")
    vocab = small_vocabulary()

    read_everything = []
    monkeypatch.setattr(Catalog, "iter_embeddings",
                        lambda *a, **k: read_everything.append(1) or iter(()))
    incremental = TagService(incremental_lib, lambda: counting_encoder, vocabulary=vocab)
    report = incremental.refresh(new_ids)
    assert read_everything == []
    assert report.photos == 3 and report.recalibration is None and not report.recalibrated
    monkeypatch.undo()

    full = TagService(full_lib, lambda: counting_encoder, vocabulary=vocab)
    full_report = full.refresh()
    assert full_report.photos == BASE + 3 and full_report.recalibration is None

    got, want = pending(incremental), pending(full)
    assert {k for k in want if k[0] in new_ids}, "the new photos should get suggestions"
    assert got.keys() == want.keys()  # new photos alike, and old ones untouched by either
    for key, (score, source) in want.items():
        assert got[key][1] == source
        assert got[key][0] == pytest.approx(score, abs=1e-6)
    for svc in (incremental, full):
        assert decisions(svc, new_ids + list(range(1, 8)), "product_showcase") == reviews
    incremental_lib.close()
    full_lib.close()


def test_enough_new_photos_recalibrate_the_whole_library(reviewed, root, counting_encoder,
                                                         monkeypatch):
    svc = reviewed
    decided = {t: decisions(svc, list(range(1, BASE + 1)), t) for t in ("product_showcase",
                                                                        "meeting")}
    add_photos(root, BASE, 10)  # 25% more: medians and spreads may have moved
    new_ids = index_quietly(svc.library, counting_encoder, root, monkeypatch)

    report = svc.refresh(new_ids)
    assert f"from {BASE} to {BASE + 10} photos" in report.recalibration
    assert sorted(report.recalibrated) == ["document", "meeting", "product_showcase"]
    assert report.photos == BASE + 10
    for tag, states in decided.items():
        assert decisions(svc, list(states), tag) == states  # reviews never change
    assert {s.photo_id for s in svc.pending(limit=10_000)} >= set(new_ids)

    again = svc.refresh(new_ids)  # now calibrated on this library: back to the cheap path
    assert again.recalibration is None and again.photos == len(new_ids)


def test_a_vocabulary_change_still_refreshes_every_photo(reviewed, root, counting_encoder,
                                                         monkeypatch):
    add_photos(root, BASE, 1)
    new_ids = index_quietly(reviewed.library, counting_encoder, root, monkeypatch)
    vocab = small_vocabulary(document=("a photo of a signed contract on a desk",))
    svc = TagService(reviewed.library, lambda: counting_encoder, vocabulary=vocab)

    report = svc.refresh(new_ids)
    assert report.encoded_prompts == 1
    assert report.recalibrated == ["document"] and "document" in report.recalibration
    assert report.photos == BASE + 1
    assert svc.refresh(new_ids).recalibration is None


def test_an_index_run_adding_a_few_photos_does_not_read_every_embedding(
        reviewed, root, counting_encoder, monkeypatch):
    """The pipeline's own hook, spied on: while it runs, the catalog is never asked for
    the whole library's embeddings — only for the new photos'."""
    in_hook, read_everything, asked = [], [], []
    real_hook = pipeline.suggest_after_indexing
    real_iter, real_some = Catalog.iter_embeddings, Catalog.searchable_embeddings

    def hook(*args, **kwargs):
        in_hook.append(True)
        try:
            return real_hook(*args, **kwargs)
        finally:
            in_hook.pop()

    def iter_embeddings(self, *args, **kwargs):
        if in_hook:
            read_everything.append(1)
        return real_iter(self, *args, **kwargs)

    def searchable_embeddings(self, photo_ids):
        asked.append(sorted(photo_ids))
        return real_some(self, photo_ids)

    monkeypatch.setattr(pipeline, "suggest_after_indexing", hook)
    monkeypatch.setattr(Catalog, "iter_embeddings", iter_embeddings)
    monkeypatch.setattr(Catalog, "searchable_embeddings", searchable_embeddings)
    add_photos(root, BASE, 2)
    summary = index_paths(reviewed.library, counting_encoder, [root], workers=1)

    assert len(summary.photo_ids) == 2
    assert read_everything == []
    assert asked == [sorted(summary.photo_ids)]
    suggested = {s.photo_id for s in reviewed.pending(tag="meeting", limit=1000)}
    assert set(summary.photo_ids) <= suggested  # 'meeting' fits everything (threshold ~0)


def test_a_review_click_rescores_only_its_tag_and_agrees_with_a_full_pass(
        reviewed, tmp_path, counting_encoder, monkeypatch):
    library = reviewed.library
    click_lib, full_lib = clone(library, tmp_path, "a"), clone(library, tmp_path, "b")
    vocab = small_vocabulary()
    click = TagService(click_lib, lambda: counting_encoder, vocabulary=vocab)
    full = TagService(full_lib, lambda: counting_encoder, vocabulary=vocab)
    target = sorted({p for p, _ in pending(click)})[-2:]  # reviews went to the first ones

    reads = []
    real_iter = Catalog.iter_embeddings
    monkeypatch.setattr(Catalog, "iter_embeddings",
                        lambda self, *a, **k: reads.append(1) or real_iter(self, *a, **k))
    first = click.accept(target[:1], "product_showcase")
    second = click.reject(target[1:], "product_showcase")
    assert len(reads) <= 1  # the app's service keeps the matrix between clicks
    for report in (first.refresh, second.refresh):
        assert report.recalibrated == ["product_showcase"]
        assert report.photos < BASE  # not the whole library

    full.accept(target[:1], "product_showcase", learn=False)
    full.reject(target[1:], "product_showcase", learn=False)
    full.retrain(["product_showcase"])
    whole = full.refresh()
    assert whole.photos == BASE

    got, want = pending(click), pending(full)
    assert got.keys() == want.keys()
    for key, (score, source) in want.items():
        assert got[key][1] == source
        assert got[key][0] == pytest.approx(score, abs=1e-4)  # the catalog's no-op margin
    assert decisions(click, target, "product_showcase") == {target[0]: "accepted",
                                                     target[1]: "rejected"}
    click_lib.close()
    full_lib.close()


def test_rank_uses_the_calibration_suggestions_were_made_with(reviewed):
    ranked = dict(reviewed.rank("meeting"))
    stored = {p: score for (p, tag), (score, _src) in pending(reviewed).items()
              if tag == "meeting"}
    assert stored
    for photo_id, score in stored.items():
        assert ranked[photo_id] == pytest.approx(score, abs=1e-4)
