"""Searching a small library indexed with the tiny model (mechanics, not semantics)."""

from __future__ import annotations

import pytest

from indexer.catalog import PhotoFilter
from indexer.pipeline import ModelMismatchError, index_paths
from search.query import QueryError, SearchService
from tests.conftest import CountingEncoder, write_photo


@pytest.fixture
def indexed(tmp_path, library, tiny_encoder):
    root = tmp_path / "photos"
    for i in range(6):
        write_photo(root / "张三" / "会议" / f"z{i}.jpg", seed=i)
    for i in range(4):
        write_photo(root / "李四" / "展会" / f"l{i}.jpg", seed=100 + i)
    index_paths(library, tiny_encoder, [root])
    return SearchService(library, lambda: tiny_encoder), root


def test_text_search_ranks_by_cosine_within_client(indexed, tiny_encoder):
    service, _ = indexed
    hits = service.by_text("展台产品演示", PhotoFilter(client="李四"), k=10)
    assert len(hits) == 4 and {h.photo.client for h in hits} == {"李四"}
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    query = tiny_encoder.encode_texts(["展台产品演示"])[0]
    best = max(
        hits, key=lambda h: float(service.library.catalog.embedding(h.photo.id) @ query)
    )
    assert hits[0].photo.id == best.photo.id
    assert hits[0].reason.startswith("image similarity")


def test_similar_excludes_the_photo_itself_and_respects_project(indexed):
    service, root = indexed
    photo_id = service.library.catalog.photo_id_for_path(str(root / "张三" / "会议" / "z0.jpg"))
    hits = service.similar(photo_id, PhotoFilter(project="会议"), k=20)
    assert photo_id not in [h.photo.id for h in hits]
    assert len(hits) == 5 and {h.photo.project for h in hits} == {"会议"}


def test_search_by_example_file_finds_its_copy_first(indexed, tmp_path):
    service, root = indexed
    example = tmp_path / "example.png"
    write_photo(example, seed=102)  # same pixels as 李四/展会/l2.jpg
    hits = service.by_image(example, k=3)
    assert hits[0].photo.path == str(root / "李四" / "展会" / "l2.jpg")


def test_bad_queries_get_clear_errors(indexed, tmp_path):
    service, _ = indexed
    with pytest.raises(QueryError, match="type some words"):
        service.by_text("   ")
    with pytest.raises(QueryError, match="too long"):
        service.by_text("x" * 2000)
    with pytest.raises(QueryError, match="no client named '王五'.*张三"):
        service.by_text("meeting", PhotoFilter(client="王五"))
    with pytest.raises(QueryError, match="between 1 and"):
        service.by_text("meeting", k=0)
    with pytest.raises(QueryError, match="no indexed photo"):
        service.similar(99999)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(QueryError, match="cannot use"):
        service.by_image(broken)


def test_sql_metacharacters_in_filters_are_just_text(indexed):
    service, _ = indexed
    with pytest.raises(QueryError, match="no client named"):
        service.by_text("meeting", PhotoFilter(client="x' OR '1'='1"))
    assert service.by_text("meeting", PhotoFilter(project="会议' --")) == []


def test_query_with_another_model_is_refused(indexed, tiny_encoder):
    service, _ = indexed
    other = CountingEncoder(tiny_encoder)
    other.model_id = "english:ViT-B-32/laion2b_s34b_b79k"
    mismatched = SearchService(service.library, lambda: other)
    with pytest.raises(ModelMismatchError, match="indexed with"):
        mismatched.by_text("meeting")


def test_trashed_or_missing_photos_are_not_returned(indexed):
    service, root = indexed
    (root / "李四" / "展会" / "l0.jpg").unlink()
    index_paths(service.library, service.encoder, [root])
    hits = service.by_text("booth", PhotoFilter(client="李四"), k=10)
    assert len(hits) == 3
    assert str(root / "李四" / "展会" / "l0.jpg") not in [h.photo.path for h in hits]
