"""The Cleanup screen's handlers: duplicate groups, poor photos and the trash.

Plain functions over `Services` returning plain data, like `ui.handlers`. Files move only
through `search.cleanup` (keep one of a group, trash the others) and `indexer.trash`
(move one photo, restore); each result says what happened and what can be undone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indexer.catalog import PhotoFilter
from indexer.errors import KezhaoError
from indexer.trash import TrashEntry, list_trash, restore, restore_all, trash_photos
from search.cleanup import find_duplicates, poor_photos, resolve_group
from search.duplicates import DEFAULT_STRICTNESS, STRICTNESS
from search.quality_rules import RULES
from ui.context import Services
from ui.handlers import FormError, thumb_url

POOR_SHOWN = 60
STRICTNESS_LABELS = {
    "exact": "完全相同 exact — the same file",
    "near": "几乎相同 near — the same picture, resized or re-saved",
    "similar": "相似 similar — the same moment; review before removing",
}
POOR_LABELS = {
    "blurry": "模糊 blurry",
    "dark": "太暗 dark",
    "small": "太小 small",
}


@dataclass(frozen=True)
class MemberView:
    photo_id: int
    name: str
    path: str
    client: str | None
    day: str | None
    size_text: str
    keeper: bool
    reason: str
    thumb_url: str


@dataclass(frozen=True)
class GroupView:
    group_id: str
    strictness: str
    members: list[MemberView]
    differences: dict[str, list]


@dataclass(frozen=True)
class PoorView:
    photo_id: int
    name: str
    path: str
    client: str | None
    reason: str
    thumb_url: str


@dataclass(frozen=True)
class TrashView:
    trash_id: int
    photo_id: int | None
    name: str
    original_path: str
    client: str | None
    reason: str | None
    moved_at: str | None
    thumb_url: str | None


@dataclass(frozen=True)
class CleanupList:
    """One cleanup listing and the line that explains it."""

    items: list
    message: str
    kind: str = "ok"  # ok | empty | error


def strictness_choices() -> list[tuple[str, str]]:
    return [(STRICTNESS_LABELS.get(name, name), name) for name in STRICTNESS]


def poor_choices() -> list[tuple[str, str]]:
    return [(POOR_LABELS.get(kind, kind), kind) for kind in RULES]


def _selection(client: str | None) -> PhotoFilter:
    name = (client or "").strip()
    return PhotoFilter(client=name or None)


def _dimensions(width: int | None, height: int | None, size: int) -> str:
    dims = f"{width}×{height}" if width and height else "?"
    amount = f"{size / (1 << 20):.1f} MB" if size >= 1 << 20 else f"{max(1, size // 1024)} KB"
    return f"{dims} · {amount}"


def duplicate_groups(
    services: Services, level: str | None = DEFAULT_STRICTNESS, client: str | None = None
) -> CleanupList:
    """Duplicate groups, the suggested keeper first in each, with every photo's reason."""
    try:
        groups = find_duplicates(services.library, level=level or DEFAULT_STRICTNESS,
                                 flt=_selection(client))
    except KezhaoError as err:
        return CleanupList([], str(err), "error")
    views = [
        GroupView(g.id, g.strictness, [
            MemberView(
                m.photo.id, Path(m.photo.path).name, m.photo.path, m.photo.client,
                (m.photo.taken_at or "")[:10] or None,
                _dimensions(m.photo.width, m.photo.height, m.photo.size), m.keeper, m.reason,
                thumb_url(m.photo.id),
            )
            for m in g.members
        ], dict(g.differences))
        for g in groups
    ]
    if not views:
        return CleanupList([], "没有重复照片 No duplicates at this strictness — try "
                           "'similar' to see near shots of one scene.", "empty")
    extra = sum(len(g.members) - 1 for g in views)
    return CleanupList(views, f"{len(views)} 组重复 duplicate groups; keeping the suggested "
                       f"photo of each would move {extra} photos to the trash (restorable).")


def resolve_duplicates(services: Services, group: str, keep: int | str | None = None) -> str:
    """Keep one photo of a group (the suggested keeper unless `keep`) and trash the rest."""
    keeper = None if keep in (None, "") else int(str(keep))
    try:
        result = resolve_group(services.library, group, keep=keeper)
    except KezhaoError as err:
        raise FormError(str(err)) from err
    moved = len(result.trashed)
    line = (f"保留 kept #{result.keeper_id}; 移到回收站 moved {moved} photo(s) to the trash — "
            "restore them from the trash below.")
    if result.inherited_tags:
        line += f" Tags kept on #{result.keeper_id}: {', '.join(result.inherited_tags)}."
    for photo_id, reason in result.skipped:
        line += f" Not moved #{photo_id}: {reason}."
    return line


def poor_list(
    services: Services, kind: str | None = "blurry", client: str | None = None,
    limit: int = POOR_SHOWN,
) -> CleanupList:
    """Blurry, dark or small photos, worst first, each with its reason."""
    try:
        rows = poor_photos(services.library, kind or "blurry", flt=_selection(client),
                           limit=limit)
    except KezhaoError as err:
        return CleanupList([], str(err), "error")
    views = [
        PoorView(r.photo.id, Path(r.photo.path).name, r.photo.path, r.photo.client, r.reason,
                 thumb_url(r.photo.id))
        for r in rows
    ]
    label = POOR_LABELS.get(kind or "", kind)
    if not views:
        return CleanupList([], f"没有{label}的照片 No {kind} photos.", "empty")
    return CleanupList(views, f"{len(views)} 张 photos listed as {label}, worst first.")


def trash_one(services: Services, photo_id: int | str, reason: str | None = None) -> str:
    """Move one photo to the library trash (restorable byte-identical)."""
    try:
        pid = int(str(photo_id))
    except ValueError:
        raise FormError(f"不是照片编号 not a photo id: {photo_id!r}") from None
    report = trash_photos(services.library, [pid], reason or "removed in the web app")
    if report.skipped:
        raise FormError(report.skipped[0][1])
    return f"照片 #{pid} 已移到回收站 photo #{pid} moved to the trash — restore it below."


def _trash_view(entry: TrashEntry) -> TrashView:
    return TrashView(
        entry.id, entry.photo_id, Path(entry.original_path).name, entry.original_path,
        entry.client, entry.reason, (entry.moved_at or entry.journaled_at or "")[:19] or None,
        thumb_url(entry.photo_id) if entry.photo_id is not None else None,
    )


def trash_contents(services: Services) -> CleanupList:
    """What is in the trash now, newest first."""
    entries = [_trash_view(e) for e in reversed(list_trash(services.library))]
    if not entries:
        return CleanupList([], "回收站是空的 The trash is empty.", "empty")
    return CleanupList(entries, f"回收站 {len(entries)} 张 photos in the trash; restoring "
                       "puts each back where it was, byte-identical.")


def restore_one(services: Services, trash_id: int | str) -> str:
    try:
        entry = restore(services.library, int(str(trash_id)))
    except ValueError:
        raise FormError(f"not a trash entry: {trash_id!r}") from None
    except KezhaoError as err:
        raise FormError(str(err)) from err
    return f"已还原 restored {entry.original_path}"


def restore_everything(services: Services) -> str:
    report = restore_all(services.library)
    line = f"已还原 restored {len(report.done)} photo(s)."
    for trash_id, reason in report.skipped:
        line += f" Not restored entry {trash_id}: {reason}."
    return line
