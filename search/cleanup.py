"""Cleanup over a library: duplicate groups with a suggested keeper, poor photos, and
resolving a group by moving the other photos to the trash.

The functions the CLI and the web app call. The grouping and keeper rules themselves are
pure (`search.duplicates`, `search.quality_rules`); files only move through
`indexer.trash`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from indexer.catalog import Photo, PhotoFilter
from indexer.errors import KezhaoError
from indexer.library import Library
from indexer.trash import TrashEntry, trash_photos
from search.duplicates import (
    DEFAULT_STRICTNESS,
    DuplicateError,
    choose_keeper,
    find_groups,
    group_id,
    parse_group_id,
    phash_array,
    quality_order,
    shot_times,
    strictest_match,
    strictness,
)
from search.quality_rules import RULES, PoorRule


class CleanupError(KezhaoError):
    """A cleanup request we cannot honour as asked."""


@dataclass(frozen=True)
class GroupMember:
    photo: Photo
    keeper: bool
    reason: str
    blurry: bool

    def as_dict(self) -> dict:
        p = self.photo
        return {
            "id": p.id, "path": p.path, "client": p.client, "project": p.project,
            "taken_at": p.taken_at, "width": p.width, "height": p.height, "format": p.format,
            "size": p.size, "sharpness": p.sharpness, "camera": " ".join(
                x for x in (p.camera_make, p.camera_model) if x) or None,
            "tags": list(p.tags), "thumbnail": p.thumbnail, "keeper": self.keeper,
            "blurry": self.blurry, "reason": self.reason,
        }


@dataclass(frozen=True)
class DuplicateGroup:
    """Photos that match each other at `strictness`; the keeper first."""

    id: str
    strictness: str
    keeper_id: int
    members: tuple[GroupMember, ...]
    differences: dict[str, list] = field(default_factory=dict)

    @property
    def photo_ids(self) -> list[int]:
        return [m.photo.id for m in self.members]

    def as_dict(self) -> dict:
        return {
            "group": self.id, "strictness": self.strictness, "keeper": self.keeper_id,
            "photos": [m.as_dict() for m in self.members], "differences": self.differences,
            "resolve": f"kezhao dupes resolve {self.id}",
        }


@dataclass(frozen=True)
class ResolveResult:
    group: str
    keeper_id: int
    trashed: list[TrashEntry]
    skipped: list[tuple[int, str]]
    inherited_tags: list[str]

    def as_dict(self) -> dict:
        return {
            "group": self.group, "keeper": self.keeper_id,
            "trashed": [e.as_dict() for e in self.trashed],
            "skipped": [{"id": i, "message": m} for i, m in self.skipped],
            "inherited_tags": self.inherited_tags,
        }


@dataclass(frozen=True)
class PoorPhoto:
    photo: Photo
    value: float
    reason: str

    def as_dict(self) -> dict:
        data = asdict(self.photo)
        data["tags"] = list(self.photo.tags)
        data["value"] = self.value
        data["reason"] = self.reason
        return data


def _check_client(library: Library, flt: PhotoFilter) -> None:
    if flt.client is not None and not library.catalog.client_exists(flt.client):
        known = ", ".join(c.name for c in library.catalog.clients()[:10]) or "none yet"
        raise CleanupError(f"no client named {flt.client!r} (known clients: {known})")


def _differences(photos: list[Photo]) -> dict[str, list]:
    """What differs inside a group and would be lost by keeping one photo only."""
    diff: dict[str, list] = {}
    for key in ("client", "project", "description"):
        values = sorted({getattr(p, key) for p in photos if getattr(p, key)})
        if len(values) > 1 or (values and any(not getattr(p, key) for p in photos)):
            diff[key] = values
    tag_sets = {tuple(p.tags) for p in photos}
    if len(tag_sets) > 1:
        diff["tags"] = sorted({t for p in photos for t in p.tags})
    return diff


def _build_group(photos: list[Photo], level_name: str, keep: int | None = None
                 ) -> DuplicateGroup:
    verdict = choose_keeper(photos, keep)
    ordered = sorted(photos, key=lambda p: (p.id != verdict.keeper_id, p.id))
    members = tuple(
        GroupMember(p, p.id == verdict.keeper_id, verdict.reasons[p.id], p.id in verdict.blurry)
        for p in ordered
    )
    return DuplicateGroup(
        group_id([p.id for p in photos]), level_name, verdict.keeper_id, members,
        _differences(photos),
    )


def find_duplicates(
    library: Library,
    *,
    level: str = DEFAULT_STRICTNESS,
    flt: PhotoFilter | None = None,
    all_clients: bool = False,
) -> list[DuplicateGroup]:
    """Duplicate groups among searchable photos matching `flt`, each with a suggested
    keeper and a reason per photo. Groups stay within one client unless `all_clients`
    (photos without a client count as one more client). Largest groups first."""
    flt = flt or PhotoFilter()
    chosen = strictness(level)
    _check_client(library, flt)
    photos, vectors = library.catalog.photos_with_embeddings(flt)
    if len(photos) < 2:
        return []
    phashes, hashed = phash_array(photos)
    rows = find_groups(
        chosen, [p.content_hash for p in photos], quality_order(photos),
        vectors=vectors, phashes=phashes, hashed=hashed, times=shot_times(photos),
        scopes=None if all_clients else [p.client for p in photos],
    )
    with_tags = library.catalog.photos_by_ids([photos[i].id for g in rows for i in g])
    groups = [_build_group([with_tags[photos[i].id] for i in g], chosen.name) for g in rows]
    groups.sort(key=lambda g: (-len(g.members), g.members[0].photo.client or "", g.keeper_id))
    return groups


def resolve_group(
    library: Library, group: str, *, keep: int | None = None
) -> ResolveResult:
    """Keep one photo of a group and move the others to the trash.

    The group is named by its id (its photo ids), so it can come from an earlier listing;
    before anything moves, the photos are checked again to still be searchable and to
    still match each other at least at the loosest strictness — a mistyped id can never
    send unrelated photos to the trash. The keeper (suggested, or `keep`) inherits every
    accepted tag of the others."""
    ids = parse_group_id(group)
    photos_by_id = library.catalog.photos_by_ids(ids)
    for photo_id in ids:
        photo = photos_by_id.get(photo_id)
        if photo is None:
            raise CleanupError(f"photo #{photo_id} of group {group} is not in the catalog")
        if photo.status != "ok":
            raise CleanupError(
                f"photo #{photo_id} of group {group} is {photo.status}; list the groups "
                "again with `kezhao dupes`"
            )
    photos = [photos_by_id[i] for i in ids]
    vectors = {i: library.catalog.embedding(i) for i in ids}
    level = strictest_match(photos, vectors)
    if level is None:
        raise CleanupError(
            f"the photos of group {group} are not all duplicates of each other; list the "
            "groups again with `kezhao dupes`"
        )
    if keep is not None and keep not in ids:
        raise CleanupError(f"photo #{keep} is not in group {group}")
    built = _build_group(photos, level.name, keep)
    others = [m for m in built.members if not m.keeper]
    inherited = library.catalog.merge_accepted_tags(built.keeper_id, [m.photo.id for m in others])
    trashed: list[TrashEntry] = []
    skipped: list[tuple[int, str]] = []
    for member in others:  # one reason per photo, so the trash list says why each went
        report = trash_photos(
            library, [member.photo.id], f"duplicate of #{built.keeper_id}: {member.reason}"
        )
        trashed.extend(report.done)
        skipped.extend(report.skipped)
    if trashed:
        library.catalog.record_duplicate_decision(
            built.keeper_id, [e.photo_id for e in trashed if e.photo_id is not None], level.name
        )
    return ResolveResult(built.id, built.keeper_id, trashed, skipped, inherited)


def duplicate_group(library: Library, group: str) -> DuplicateGroup:
    """One group by id, with keeper and reasons (for a UI that shows a single group)."""
    ids = parse_group_id(group)
    photos_by_id = library.catalog.photos_by_ids(ids)
    photos = [photos_by_id[i] for i in ids if i in photos_by_id]
    if len(photos) < 2:
        raise DuplicateError(f"group {group} no longer has two photos in the catalog")
    level = strictest_match(photos, {p.id: library.catalog.embedding(p.id) for p in photos})
    return _build_group(photos, level.name if level else "none")


def poor_photos(
    library: Library,
    kind: str,
    *,
    flt: PhotoFilter | None = None,
    below: float | None = None,
    limit: int | None = None,
) -> list[PoorPhoto]:
    """Blurry, dark or small photos, worst first (see `search.quality_rules`)."""
    flt = flt or PhotoFilter()
    rule: PoorRule | None = RULES.get(kind)
    if rule is None:
        raise CleanupError(f"unknown cleanup list {kind!r}; choose one of {', '.join(RULES)}")
    _check_client(library, flt)
    threshold = rule.below if below is None else float(below)
    rows = library.catalog.photos_below(flt, rule.measure, threshold, limit)
    return [PoorPhoto(photo, value, rule.reason(photo, threshold)) for photo, value in rows]
