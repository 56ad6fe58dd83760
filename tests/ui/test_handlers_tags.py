"""Tag review handlers as plain functions: the queue, decisions, undo, tags as filters.

Suggestions come from a narrowed vocabulary (see `narrow_vocabulary`): the tiny model has
no semantics, so which photo gets which tag means nothing — only the mechanics are tested.
"""

from __future__ import annotations

import pytest

from indexer.pipeline import index_paths
from tests.conftest import write_photo
from tests.ui.web_fixtures import make_services, narrow_vocabulary
from ui import handlers as h
from ui import handlers_tags as ht


@pytest.fixture
def review(library, tiny_encoder, tmp_path):
    root = tmp_path / "photos"
    for i in range(4):
        write_photo(root / "张三" / f"z{i}.jpg", seed=i)
    for i in range(2):
        write_photo(root / "李四" / f"l{i}.jpg", seed=10 + i)
    index_paths(library, tiny_encoder, [root])
    narrow_vocabulary(library, tiny_encoder)
    services = make_services(library, tiny_encoder)
    return services, services.tags


def test_queue_lists_tags_with_pending_counts_and_their_photos(review):
    services, tags = review
    choices = ht.review_choices(tags)
    assert {key for _label, key in choices} == {"banner", "booth"}
    counts = [int(label.rsplit("— ", 1)[1]) for label, _key in choices]
    assert counts == sorted(counts, reverse=True) and all(1 <= n <= 6 for n in counts)
    booth_left = dict((k, n) for (_l, k), n in zip(choices, counts, strict=True))["booth"]

    queue = ht.review_queue(tags, "booth")
    assert (queue.tag_key, queue.label, queue.left) == ("booth", "展台 booth", booth_left)
    assert len(queue.items) == booth_left and f"{booth_left} left to review" in queue.message
    scores = [s.score for s in queue.items]
    assert scores == sorted(scores, reverse=True)
    assert all(s.thumb_url == f"/thumb/{s.photo_id}" for s in queue.items)
    only_li = ht.review_queue(tags, "booth", client="李四")
    assert {s.client for s in only_li.items} <= {"李四"} and only_li.left <= 2
    assert ht.review_queue(tags, None).tag_key in {"banner", "booth"}


def test_accept_one_then_it_is_a_search_filter_and_undo_takes_it_back(review):
    services, tags = review
    first = ht.review_queue(tags, "booth").items[0]
    assert "accepted booth: 1" in ht.decide(tags, [str(first.photo_id)], "booth", accept=True)
    assert ht.review_queue(tags, "booth").left == 5
    assert ("展台 booth (1)", "booth") in ht.filter_choices(tags)

    found = h.browse(services, h.Filters(tag="booth"))
    assert [t.photo_id for t in found.tiles] == [first.photo_id]
    assert found.tiles[0].tags == ("booth",)
    details = h.photo_details(services, first.photo_id)
    assert ("booth", "展台 booth") in details.tags
    assert "booth" not in [key for key, _label, _score in details.suggested]

    assert "undone: booth on 1 photo" in ht.undo_last(tags)
    assert ht.review_queue(tags, "booth").left == 6
    assert h.browse(services, h.Filters(tag="booth")).kind == "empty"
    assert "Nothing to undo" in ht.undo_last(tags)


def test_rejected_suggestions_do_not_come_back(review):
    services, tags = review
    photo = ht.review_queue(tags, "banner").items[0].photo_id
    assert "rejected banner: 1" in ht.decide(tags, [photo], "banner", accept=False)
    assert photo not in {s.photo_id for s in ht.review_queue(tags, "banner").items}
    details = h.photo_details(services, photo)
    assert "banner" not in [key for key, _label, _score in details.suggested]


def test_accept_or_reject_a_whole_selection(review):
    services, tags = review
    assert "accepted booth: 2" in ht.decide_all(tags, "booth", "李四", accept=True)
    assert ht.review_queue(tags, "booth").left == 4
    assert {t.client for t in h.browse(services, h.Filters(tag="booth")).tiles} == {"李四"}
    assert "rejected booth: 4" in ht.decide_all(tags, "booth", None, accept=False)
    done = ht.review_queue(tags, "booth")
    assert done.items == [] and done.kind == "empty" and "all reviewed" in done.message


def test_bad_decisions_are_explained(review):
    _services, tags = review
    with pytest.raises(h.FormError, match="no tag named"):
        ht.decide(tags, [1], "no-such-tag", accept=True)
    with pytest.raises(h.FormError, match="not photo ids"):
        ht.decide(tags, ["../1"], "booth", accept=True)
    with pytest.raises(h.FormError, match="no photo with id"):
        ht.decide(tags, [99999], "booth", accept=True)


def test_empty_queue_says_what_to_do(library, tiny_encoder):
    services = make_services(library, tiny_encoder)
    queue = ht.review_queue(services.tags, None)
    assert queue.kind == "empty" and "No suggestions waiting" in queue.message
