"""The Tag review screen's handlers: a queue of suggestions per tag, decisions, undo.

Plain functions over the app's `TagService` (`services.tags`: one per app, so a review
session reuses its cached embedding matrix between clicks) returning plain data. Every
decision is one undoable batch in the catalog and retrains the tag, so the next suggestions
already reflect it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from indexer.catalog import PhotoFilter
from indexer.errors import KezhaoError
from indexer.tagging import TagService
from models import ModelError
from ui.handlers import FormError, explain_error, tag_label, thumb_url

QUEUE_SHOWN = 60


@dataclass(frozen=True)
class SuggestionView:
    photo_id: int
    name: str
    client: str | None
    day: str | None
    score: float
    thumb_url: str


@dataclass(frozen=True)
class ReviewQueue:
    """The suggestions of one tag waiting for a decision, best first."""

    tag_key: str | None
    label: str
    items: list[SuggestionView]
    left: int
    message: str
    kind: str = "ok"  # ok | empty | error


def _selection(client: str | None) -> PhotoFilter | None:
    name = (client or "").strip()
    return PhotoFilter(client=name) if name else None


def review_choices(tags: TagService, client: str | None = None) -> list[tuple[str, str]]:
    """Tags with pending suggestions, most first: ("展台 booth — 12", key)."""
    counts = sorted(tags.pending_by_tag(_selection(client)), key=lambda c: (-c.count,
                                                                          c.tag_key))
    return [(f"{tag_label(c.label_zh, c.label_en)} — {c.count}", c.tag_key) for c in counts]


def filter_choices(tags: TagService) -> list[tuple[str, str]]:
    """Tags that have accepted photos, for the search filter: ("展台 booth (3)", key)."""
    return [("全部标签 All tags", "")] + [
        (f"{tag_label(i.tag.label_zh, i.tag.label_en)} ({i.accepted})", i.tag.key)
        for i in tags.list_tags(include_retired=True) if i.accepted
    ]


def review_queue(
    tags: TagService, tag_key: str | None, client: str | None = None, limit: int = QUEUE_SHOWN
) -> ReviewQueue:
    """The next suggestions to review for a tag (the tag with most pending when none)."""
    try:
        selection = _selection(client)
        counts = {c.tag_key: c for c in tags.pending_by_tag(selection)}
        if not counts:
            return ReviewQueue(None, "", [], 0, "没有待审的标签建议 No suggestions waiting "
                               "for review — index more photos, or add a tag.", "empty")
        key = (tag_key or "").strip() or max(counts.values(), key=lambda c: c.count).tag_key
        if key not in counts:
            return ReviewQueue(key, key, [], 0, f"{key}: 全部审完 all reviewed — pick another "
                               "tag.", "empty")
        count = counts[key]
        rows = tags.pending(selection, key, limit=limit)
    except (KezhaoError, ModelError) as err:
        return ReviewQueue(tag_key, "", [], 0, explain_error(err), "error")
    label = tag_label(count.label_zh, count.label_en)
    items = [
        SuggestionView(s.photo_id, Path(s.path).name, s.client, (s.taken_at or "")[:10] or None,
                       s.score, thumb_url(s.photo_id))
        for s in rows
    ]
    return ReviewQueue(key, label, items, count.count,
                       f"{label}: 还剩 {count.count} 张待审 {count.count} left to review. "
                       "Accept ✓ / reject ✗ each photo (keys A / R), or all of them at once.")


def _report(verb: str, label: str, changed: Sequence[int]) -> str:
    return f"{verb} {label}: {len(changed)} 张 photo(s). 可撤销 Undo is one click away."


def decide(tags: TagService, photo_ids: Sequence[int | str], tag_key: str, accept: bool) -> str:
    """Accept or reject a tag for some photos; raises FormError with the reason if not."""
    try:
        ids = [int(str(i)) for i in photo_ids]
        report = (tags.accept if accept else tags.reject)(ids, tag_key)
    except ValueError:
        raise FormError(f"不是照片编号 not photo ids: {list(photo_ids)!r}") from None
    except (KezhaoError, ModelError) as err:
        raise FormError(explain_error(err)) from err
    return _report("已接受 accepted" if accept else "已拒绝 rejected", tag_key, report.changed)


def decide_all(tags: TagService, tag_key: str, client: str | None, accept: bool) -> str:
    """Accept or reject every pending suggestion of a tag in the selection."""
    try:
        act = tags.accept_suggested if accept else tags.reject_suggested
        report = act(tag_key, _selection(client))
    except (KezhaoError, ModelError) as err:
        raise FormError(explain_error(err)) from err
    return _report("已接受 accepted" if accept else "已拒绝 rejected", tag_key, report.changed)


def undo_last(tags: TagService) -> str:
    try:
        report = tags.undo()
    except (KezhaoError, ModelError) as err:
        raise FormError(explain_error(err)) from err
    if report.batch_id is None:
        return "没有可撤销的操作 Nothing to undo."
    return f"已撤销 undone: {', '.join(report.tags)} on {len(report.changed)} photo(s)."
