"""Text-in-photo matches merged with CLIP matches.

The text side uses the real (offline) PP-OCR models on real photos with rendered text. The
CLIP side uses the tiny random model: it has NO semantics, so its ranking is arbitrary and
only the text evidence is meaningful in these tests.
"""

from __future__ import annotations

import pytest

from indexer.catalog import PhotoFilter
from indexer.library import open_library
from indexer.ocr import read_text
from indexer.pipeline import index_paths
from models.ocr import load_ocr_engine
from search.hybrid import (
    HybridSearch,
    rank_text_matches,
    reciprocal_rank_fusion,
    text_terms,
)
from search.query import QueryError, SearchService
from tests.ocr_helpers import plain_photo, text_photo


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_encoder):
    """张三 has the visit photo with a banner; 李四 has a welcome sign and plain photos."""
    root = tmp_path_factory.mktemp("hybrid") / "photos"
    banner = text_photo(root / "张三" / "拜访" / "acme.jpg", "客户拜访 ACME")
    text_photo(root / "李四" / "门店" / "sign.jpg", "欢迎光临 2024", base="Nikon_D70.jpg")
    for i in range(4):
        plain_photo(root / "李四" / "门店" / f"p{i}.jpg", seed=20 + i)
    for i in range(2):
        plain_photo(root / "张三" / "拜访" / f"z{i}.jpg", seed=40 + i)
    library = open_library(tmp_path_factory.mktemp("hybrid-lib"))
    index_paths(library, tiny_encoder, [root])
    read_text(library, load_ocr_engine())
    yield library, banner
    library.close()


@pytest.fixture
def hybrid(world, tiny_encoder):
    library, _ = world
    return HybridSearch(SearchService(library, lambda: tiny_encoder))


@pytest.mark.parametrize("query", ["ACME", "客户拜访", "拜访", "acme 客户拜访", "客户拜访ACME"])
def test_words_on_the_banner_find_the_photo_first_with_the_reason(world, hybrid, query):
    _, banner = world
    hits = hybrid.search(query, k=5)
    assert hits[0].photo.path == str(banner)
    assert hits[0].reason.startswith("text: '客户拜访")
    assert "ACME" in hits[0].reason and "image similarity" in hits[0].reason
    assert len(hits) == 5  # CLIP fills the rest of the list
    assert all(h.reason.startswith("image similarity") for h in hits[1:])


def test_client_filter_applies_to_text_matches_too(world, hybrid):
    _, banner = world
    others = hybrid.search("ACME", PhotoFilter(client="李四"), k=20)
    assert str(banner) not in [h.photo.path for h in others]
    assert {h.photo.client for h in others} == {"李四"} and len(others) == 5
    assert hybrid.search("ACME", PhotoFilter(client="张三"), k=1)[0].photo.path == str(banner)
    assert hybrid.search("ACME", PhotoFilter(project="门店"), text_only=True) == []


def test_text_only_needs_no_model_and_returns_only_text_matches(world):
    library, banner = world

    def no_model():
        raise AssertionError("text-only search must not load the CLIP model")

    hybrid = HybridSearch(SearchService(library, no_model))
    hits = hybrid.search("拜访", text_only=True)
    assert [h.photo.path for h in hits] == [str(banner)]
    assert hits[0].score == 1.0 and hits[0].reason == "text: '客户拜访ACME'"
    assert hybrid.search("2024", text_only=True)[0].photo.path.endswith("sign.jpg")
    assert hybrid.search("no such words", text_only=True) == []


def test_has_text_keeps_only_photos_with_text(hybrid):
    hits = hybrid.search("shop front", k=20, has_text=True)
    assert sorted(p.photo.path.rsplit("/", 1)[1] for p in hits) == ["acme.jpg", "sign.jpg"]
    only_lisi = hybrid.search("shop front", PhotoFilter(client="李四"), has_text=True)
    assert [h.photo.path.rsplit("/", 1)[1] for h in only_lisi] == ["sign.jpg"]


def test_without_text_matches_the_clip_ranking_is_unchanged(world, hybrid, tiny_encoder):
    library, _ = world
    plain = SearchService(library, lambda: tiny_encoder).by_text("product demo", k=6)
    hits = hybrid.search("product demo", k=6)
    assert [(h.photo.id, h.score, h.reason) for h in hits] == [
        (h.photo.id, h.score, h.reason) for h in plain
    ]


def test_bad_queries_get_clear_errors(hybrid):
    with pytest.raises(QueryError, match="type some words"):
        hybrid.search("  ", text_only=True)
    with pytest.raises(QueryError, match="no client named '王五'"):
        hybrid.search("ACME", PhotoFilter(client="王五"), text_only=True)
    with pytest.raises(QueryError, match="between 1 and"):
        hybrid.search("ACME", k=0)
    # LIKE wildcards and FTS syntax in a query are plain characters.
    assert hybrid.search('"%_ OR', text_only=True) == []


def test_terms_split_scripts_and_ignore_punctuation():
    assert text_terms("客户拜访ACME") == ["客户拜访", "acme"]
    assert text_terms("ACME-2024, 新品发布!") == ["acme", "2024", "新品发布"]
    assert text_terms("  ") == []


def test_text_ranking_prefers_full_then_phrase_then_one_line():
    terms = text_terms("ACME 2024")
    ranked = rank_text_matches(terms, [
        (1, "ACME booth"),                 # half of the query
        (2, "2024 sale\nACME"),            # all of it, on two lines, not as a phrase
        (3, "ACME 2024 新品发布"),          # the phrase on one line
        (4, "nothing here"),
    ])
    assert [m.photo_id for m in ranked] == [3, 2, 1]
    assert ranked[0].line == "ACME 2024 新品发布" and ranked[2].coverage == 0.5


def test_reciprocal_rank_fusion_rewards_agreement():
    scores = reciprocal_rank_fusion([[1, 2, 3], [3, 4]], k=60)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert max(scores, key=scores.get) == 3
