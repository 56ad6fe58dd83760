"""`kezhao dupes`, `kezhao cleanup` and `kezhao trash`: find copies and poor photos, keep the
best, and move the rest to the library trash (always restorable).

Thin adapters: each handler makes one call into `search.cleanup` or `indexer.trash` and
prints the result as text or, with --json, as JSON.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from indexer.errors import KezhaoError
from indexer.trash import TrashEntry, empty_trash, list_trash, parse_age, restore, restore_all
from search.cleanup import DuplicateGroup, find_duplicates, poor_photos, resolve_group
from search.duplicates import DEFAULT_STRICTNESS, STRICTNESS
from search.quality_rules import RULES
from ui.cli import CommandParents, _emit_json, _filter, _warn, add_command
from ui.context import Services

TINY_DUPES_NOTE = (
    "note: this library uses the tiny-test model, whose embeddings have NO semantic "
    "meaning; duplicates are told apart by the perceptual hash alone."
)


def _note_tiny(services: Services) -> None:
    if (services.library.catalog.model_id() or "").startswith("tiny-test"):
        _warn(TINY_DUPES_NOTE)


def _size(photo) -> str:
    kb = max(1, round(photo.size / 1000))
    amount = f"{kb / 1000:.1f} MB" if kb >= 1000 else f"{kb} kB"
    return f"{photo.width or '?'}×{photo.height or '?'} {photo.format or '?'} {amount}"


def _print_group(group: DuplicateGroup) -> None:
    clients = sorted({m.photo.client or "-" for m in group.members})
    print(f"group {group.id}  ({group.strictness}, {', '.join(clients)})")
    for m in group.members:
        verb = "keep " if m.keeper else "trash"
        print(f"  {verb} #{m.photo.id:<6d} {_size(m.photo):24s} {m.photo.path}")
        print(f"         {m.reason}")
    for key, values in group.differences.items():
        print(f"  differs in {key}: {', '.join(str(v) for v in values)}")
    print(f"  → kezhao dupes resolve {group.id}")


def cmd_dupes(services: Services, args: argparse.Namespace) -> int:
    if args.action == "resolve":
        return _resolve(services, args)
    if args.group is not None or args.keep is not None:
        raise KezhaoError("GROUP and --keep go with `kezhao dupes resolve GROUP`")
    _note_tiny(services)
    groups = find_duplicates(services.library, level=args.strictness, flt=_filter(args),
                             all_clients=args.all_clients)
    shown = groups[: max(0, args.k)]  # -k: like search, the first 20 unless told
    if args.json:
        _emit_json([g.as_dict() for g in shown])
        return 0
    if not groups:
        print(f"no duplicates at strictness {args.strictness!r} "
              f"({STRICTNESS[args.strictness].meaning})")
        return 0
    for group in shown:
        _print_group(group)
    extra = sum(len(g.members) - 1 for g in shown)
    more = f" (-k {len(groups)} shows all)" if len(shown) < len(groups) else ""
    print(f"{len(shown)} of {len(groups)} group(s){more}; resolving them would move {extra} "
          "photo(s) to the trash (undo with `kezhao trash restore`)")
    return 0


def _resolve(services: Services, args: argparse.Namespace) -> int:
    if args.group is None:
        raise KezhaoError("which group? use `kezhao dupes resolve GROUP` with a GROUP shown "
                          "by `kezhao dupes`")
    result = resolve_group(services.library, args.group, keep=args.keep)
    if args.json:
        _emit_json(result.as_dict())
    else:
        print(f"kept #{result.keeper_id}; moved {len(result.trashed)} photo(s) to the trash")
        for entry in result.trashed:
            print(f"  trash entry {entry.id}: {entry.original_path}")
        if result.inherited_tags:
            print(f"  #{result.keeper_id} now also has tags: {', '.join(result.inherited_tags)}")
    for photo_id, message in result.skipped:
        _warn(f"not moved #{photo_id}: {message}")
    return 1 if result.skipped else 0


def cmd_cleanup(services: Services, args: argparse.Namespace) -> int:
    rows = poor_photos(services.library, args.kind, flt=_filter(args), below=args.below,
                       limit=args.k)
    if args.json:
        _emit_json([r.as_dict() for r in rows])
        return 0
    if not rows:
        print(f"no {args.kind} photos ({RULES[args.kind].meaning})")
    for r in rows:
        print(f"#{r.photo.id:<6d} {r.photo.client or '-':10s} {r.reason:40s} {r.photo.path}")
    return 0


def _local_time(stamp: str | None) -> str:
    """Catalog times are UTC; show them in the computer's time zone."""
    try:
        return datetime.fromisoformat(stamp or "").astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return "?"


def _print_entries(entries: list[TrashEntry]) -> None:
    for e in entries:
        when = _local_time(e.moved_at or e.journaled_at)
        print(f"{e.id:5d}  {when}  {e.client or '-':10s} {e.original_path}")
        if e.reason:
            print(f"       {e.reason}")


def cmd_trash_list(services: Services, args: argparse.Namespace) -> int:
    entries = list_trash(services.library)
    if args.json:
        _emit_json([e.as_dict() for e in entries])
    elif not entries:
        print("the trash is empty")
    else:
        _print_entries(entries)
        print(f"{len(entries)} photo(s) in the trash; `kezhao trash restore ID` puts one back")
    return 0


def cmd_trash_restore(services: Services, args: argparse.Namespace) -> int:
    if args.all == (args.id is not None):
        raise KezhaoError("give one trash entry ID (see `kezhao trash list`) or --all")
    if args.all:
        report = restore_all(services.library)
        done, skipped = report.done, report.skipped
    else:
        done, skipped = [restore(services.library, args.id)], []
    if args.json:
        _emit_json({"restored": [e.as_dict() for e in done],
                    "skipped": [{"id": i, "message": m} for i, m in skipped]})
    else:
        for entry in done:
            print(f"restored {entry.original_path}")
        if not done and not skipped:
            print("the trash is empty")
    for trash_id, message in skipped:
        _warn(f"not restored (entry {trash_id}): {message}")
    return 1 if skipped else 0


def cmd_trash_empty(services: Services, args: argparse.Namespace) -> int:
    emptied = empty_trash(services.library, parse_age(args.older_than))
    if args.json:
        _emit_json([e.as_dict() for e in emptied])
        return 0
    for entry in emptied:
        print(f"deleted {Path(entry.trash_path).name} (was {entry.original_path})")
    print(f"deleted {len(emptied)} photo(s) for good; {len(list_trash(services.library))} "
          "still in the trash")
    return 0


def register(sub: argparse._SubParsersAction, parents: CommandParents) -> None:
    levels = "; ".join(f"{name}: {level.meaning}" for name, level in STRICTNESS.items())
    p = add_command(
        sub, "dupes", cmd_dupes,
        "list duplicate groups with a suggested keeper, or resolve one (`dupes resolve "
        "GROUP`): keep one photo and move the others to the trash",
        [parents.common, parents.filters],
    )
    p.add_argument("action", nargs="?", choices=["resolve"], help="resolve a group")
    p.add_argument("group", nargs="?", metavar="GROUP", help="a group id shown by the "
                   "listing (its photo ids joined by commas)")
    p.add_argument("--keep", type=int, metavar="ID", help="keep this photo instead of the "
                   "suggested keeper")
    p.add_argument("--strictness", choices=list(STRICTNESS), default=DEFAULT_STRICTNESS,
                   help=f"what counts as a duplicate (default {DEFAULT_STRICTNESS}) — {levels}")
    p.add_argument("--all-clients", action="store_true", help="also group photos of "
                   "different clients (default: within each client)")

    kinds = "; ".join(f"{kind}: {rule.meaning}" for kind, rule in RULES.items())
    p = add_command(sub, "cleanup", cmd_cleanup, "list blurry, dark or small photos, worst "
                    "first (-k how many, default 20)", [parents.common, parents.filters])
    p.add_argument("kind", choices=list(RULES), help=kinds)
    p.add_argument("--below", type=float, metavar="VALUE", help="use another threshold "
                   "(sharpness, brightness 0..1, or pixels)")

    trash = sub.add_parser("trash", help="list, restore or empty the library trash")
    tsub = trash.add_subparsers(dest="trash_command", required=True, metavar="ACTION")
    add_command(tsub, "list", cmd_trash_list, "list photos in the trash", [parents.common])
    p = add_command(tsub, "restore", cmd_trash_restore, "put photos back where they were, "
                    "byte-identical", [parents.common])
    p.add_argument("id", nargs="?", type=int, metavar="ID", help="trash entry (see `trash "
                   "list`)")
    p.add_argument("--all", action="store_true", help="restore everything in the trash")
    p = add_command(tsub, "empty", cmd_trash_empty, "delete for good what has been in the "
                    "trash long enough (the only command that deletes photos)",
                    [parents.common])
    p.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 30d, 2w, 12h; "
                   "0d empties everything")
