"""`kezhao tags …`: list, define, review and export suggested tags.

Thin adapters over `indexer.tagging.TagService` (reached as `services.tags`): each handler
makes one call and prints the result as text or, with --json, as JSON.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from indexer.catalog import PhotoFilter
from indexer.errors import KezhaoError
from indexer.tagging import DecisionReport
from indexer.xmp import LANGUAGES
from ui.cli import CommandParents, _emit_json, _parse_date, _warn, add_command
from ui.context import TINY_MODEL_WARNING, Services


def _note_model(services: Services) -> None:
    if services.preset == "tiny-test" and services.settings.checkpoint is None:
        _warn(TINY_MODEL_WARNING)


def _selection(args: argparse.Namespace) -> PhotoFilter | None:
    flt = PhotoFilter(client=getattr(args, "client", None), project=getattr(args, "project", None),
                      since=getattr(args, "since", None), until=getattr(args, "until", None))
    return None if flt.is_empty() else flt


def _photo_ids(services: Services, refs: Sequence[str]) -> list[int]:
    ids = []
    for ref in refs:
        resolved = services.search.resolve_photo(ref)
        if not isinstance(resolved, int):
            raise KezhaoError(f"{ref} is not an indexed photo")
        ids.append(resolved)
    return ids


def _label(zh: str, en: str) -> str:
    return zh if zh == en else f"{zh} {en}"


# --------------------------------------------------------------- commands
def cmd_list(services: Services, args: argparse.Namespace) -> int:
    infos = services.tags.list_tags(include_retired=args.all)
    if args.json:
        _emit_json([i.as_dict() for i in infos])
        return 0
    print(f"{'key':22s} {'accepted':>8s} {'pending':>8s} {'rejected':>8s}  label")
    for i in infos:
        notes = []
        if i.learned_from:
            notes.append(f"learned from {i.learned_from[0]}+/{i.learned_from[1]}-")
        if not i.tag.prompts:
            notes.append("by examples")
        if i.tag.source != "builtin":
            notes.append(i.tag.source)
        if i.tag.retired:
            notes.append("retired")
        extra = f"  ({', '.join(notes)})" if notes else ""
        print(f"{i.tag.key:22s} {i.accepted:8d} {i.suggested:8d} {i.rejected:8d}  "
              f"{_label(i.tag.label_zh, i.tag.label_en)}{extra}")
    return 0


def cmd_add(services: Services, args: argparse.Namespace) -> int:
    examples = _photo_ids(services, args.example or [])
    if args.prompt:
        _note_model(services)
    tag = services.tags.add_tag(args.key, args.zh, args.en, args.prompt or [],
                                threshold=args.threshold)
    report = services.tags.accept(examples, tag.key) if examples else None
    if args.json:
        _emit_json({"tag": tag.as_dict(), "examples": report.as_dict() if report else None})
        return 0
    how = f"{len(tag.prompts)} prompt(s)" if tag.prompts else "example photos"
    print(f"added tag {tag.key} ({_label(tag.label_zh, tag.label_en)}), defined by {how}")
    if report:
        print(f"accepted {len(report.changed)} example photo(s); see `kezhao tags review "
              f"--tag {tag.key}`")
    elif not tag.prompts:
        print(f"accept a few photos as examples: `kezhao tags accept PHOTO… --tag {tag.key}` "
              f"or `kezhao tags like PHOTO… --tag {tag.key}`")
    return 0


def cmd_edit(services: Services, args: argparse.Namespace) -> int:
    threshold, reset = None, False
    if args.threshold is not None:
        if args.threshold == "auto":
            reset = True
        else:
            try:
                threshold = float(args.threshold)
            except ValueError:
                raise KezhaoError(f"--threshold takes a probability like 0.7, or 'auto', "
                                  f"not {args.threshold!r}") from None
    prompts = [] if args.no_prompts else args.prompt
    if prompts:
        _note_model(services)
    tag = services.tags.edit_tag(args.tag, label_zh=args.zh, label_en=args.en, prompts=prompts,
                                 threshold=threshold, reset_threshold=reset,
                                 restore=args.restore)
    if args.json:
        _emit_json(tag.as_dict())
    else:
        print(f"tag {tag.key}: {_label(tag.label_zh, tag.label_en)}, {len(tag.prompts)} "
              f"prompt(s), threshold {tag.threshold if tag.threshold is not None else 'auto'}"
              f"{', retired' if tag.retired else ''}")
    return 0


def cmd_retire(services: Services, args: argparse.Namespace) -> int:
    tag = services.tags.retire_tag(args.tag)
    if args.json:
        _emit_json(tag.as_dict())
    else:
        print(f"retired {tag.key}: no more suggestions; photos keep it where accepted "
              f"(restore with `kezhao tags edit {tag.key} --restore`)")
    return 0


def cmd_review(services: Services, args: argparse.Namespace) -> int:
    _note_model(services)
    rows = services.tags.pending(_selection(args), args.tag, limit=args.limit,
                                 offset=args.offset)
    if args.json:
        _emit_json([s.as_dict() for s in rows])
        return 0
    if not rows:
        print("no suggestions waiting for review")
        return 0
    counts = {c.tag_key: c.count for c in services.tags.pending_by_tag(_selection(args))}
    current = None
    for s in rows:
        if s.tag_key != current:
            current = s.tag_key
            print(f"{_label(s.label_zh, s.label_en)} [{s.tag_key}] — {counts.get(current, 0)} "
                  "pending")
        when = (s.taken_at or "")[:10] or "-"
        print(f"  #{s.photo_id:<6d} {s.score:5.2f} {s.source:9s} {s.client or '-':10s} "
              f"{when}  {s.path}")
    print("accept or reject: `kezhao tags accept|reject ID… --tag KEY` or "
          "`--all-suggested --tag KEY`; `kezhao tags undo` reverts the last one")
    return 0


def _decide(services: Services, args: argparse.Namespace, state: str) -> int:
    if args.all_suggested:
        if args.photos:
            raise KezhaoError("give photo ids or --all-suggested, not both")
        act = (services.tags.accept_suggested if state == "accepted"
               else services.tags.reject_suggested)
        report = act(args.tag, _selection(args), learn=not args.no_learn)
    else:
        if not args.photos:
            raise KezhaoError("which photos? give their ids or paths, or --all-suggested")
        if _selection(args) is not None:
            raise KezhaoError("--client/--project/--since/--until go with --all-suggested")
        act = services.tags.accept if state == "accepted" else services.tags.reject
        report = act(_photo_ids(services, args.photos), args.tag, learn=not args.no_learn)
    _print_decision(report, args.json)
    return 0


def _print_decision(report: DecisionReport, as_json: bool) -> None:
    if as_json:
        _emit_json(report.as_dict())
        return
    tags = ", ".join(report.tags) or "-"
    if report.batch_id is None:
        print("nothing to undo" if report.state == "undone" else
              f"nothing changed: no photo needed {report.state} {tags}")
        return
    verb = {"accepted": "accepted", "rejected": "rejected", "undone": "undid"}[report.state]
    print(f"{verb} {tags} on {len(report.changed)} photo(s) (batch {report.batch_id})"
          + ("; `kezhao tags undo` reverts it" if report.state != "undone" else ""))
    if report.refresh is not None:
        r = report.refresh
        print(f"suggestions refreshed: {r.written} new or changed, {r.removed} withdrawn")


def cmd_accept(services: Services, args: argparse.Namespace) -> int:
    return _decide(services, args, "accepted")


def cmd_reject(services: Services, args: argparse.Namespace) -> int:
    return _decide(services, args, "rejected")


def cmd_undo(services: Services, args: argparse.Namespace) -> int:
    _print_decision(services.tags.undo(), args.json)
    return 0


def cmd_like(services: Services, args: argparse.Namespace) -> int:
    examples = _photo_ids(services, args.photos)
    negatives = _photo_ids(services, args.unlike or [])
    if args.tag:
        _note_model(services)
        report = services.tags.tag_from_examples(args.tag, examples, label_zh=args.zh,
                                                 label_en=args.en)
        if negatives:
            services.tags.reject(negatives, args.tag)
        ranked = [(i, p) for i, p in services.tags.rank(args.tag)
                  if i not in set(examples)][: args.k]
        note = (f"tag {args.tag}: {len(report.changed)} example(s) accepted; its suggestions "
                f"are in `kezhao tags review --tag {args.tag}`")
    else:
        ranked = services.tags.like(examples, _selection(args), args.k, negatives)
        note = "save these as a tag with --tag KEY"
    photos = services.library.catalog.photos_by_ids([i for i, _ in ranked])
    if args.json:
        _emit_json([{"photo_id": i, "score": round(s, 4), "path": photos[i].path,
                     "client": photos[i].client} for i, s in ranked if i in photos])
        return 0
    for rank, (photo_id, score) in enumerate(ranked, 1):
        p = photos.get(photo_id)
        if p is not None:
            print(f"{rank:3d}. {score:6.3f}  #{p.id}  {p.client or '-'}  "
                  f"{(p.taken_at or '')[:10] or '-'}  {p.path}")
    print(note)
    return 0


def cmd_export_xmp(services: Services, args: argparse.Namespace) -> int:
    report = services.tags.export_xmp(_selection(args), Path(args.to) if args.to else None,
                                      language=args.language, full_names=args.full_names)
    if args.json:
        _emit_json(report.as_dict())
    else:
        where = f"under {args.to}" if args.to else "next to the photos"
        print(f"XMP sidecars {where}: {report.created} created, {report.updated} updated, "
              f"{report.unchanged} unchanged, {len(report.failed)} failed")
    for path, message in report.failed:
        _warn(f"not written {path}: {message}")
    return 1 if report.failed else 0


def cmd_refresh(services: Services, args: argparse.Namespace) -> int:
    _note_model(services)
    if args.retrain:
        services.tags.retrain()
    report = services.tags.refresh(recalibrate=args.recalibrate)
    if args.json:
        _emit_json(report.as_dict())
        return 0
    print(f"suggestions for {report.photos} photo(s) over {report.tags} tag(s): "
          f"{report.written} new or changed, {report.removed} withdrawn"
          + (f"; encoded {report.encoded_prompts} prompt(s)" if report.encoded_prompts else ""))
    if report.recalibration:
        print(f"recalibrated {len(report.recalibrated)} tag(s) over the library: "
              f"{report.recalibration}")
    for key, reason in report.skipped:
        _warn(f"skipped {key}: {reason}")
    return 0


# ----------------------------------------------------------------- parser
def _selection_options() -> argparse.ArgumentParser:
    sel = argparse.ArgumentParser(add_help=False)
    sel.add_argument("--client", help="only this client's photos")
    sel.add_argument("--project", help="only this project")
    sel.add_argument("--since", type=_parse_date, help="taken on or after YYYY-MM-DD")
    sel.add_argument("--until", type=_parse_date, help="taken on or before YYYY-MM-DD")
    return sel


def register(sub: argparse._SubParsersAction, parents: CommandParents) -> None:
    common, sel = parents.common, _selection_options()
    tags = sub.add_parser("tags", help="suggested tags: list, define, review, learn, export")
    tsub = tags.add_subparsers(dest="tags_command", required=True, metavar="ACTION")

    p = add_command(tsub, "list", cmd_list, "list tags with accepted, pending and rejected "
                    "counts", [common])
    p.add_argument("--all", action="store_true", help="include retired tags")

    p = add_command(tsub, "add", cmd_add, "add your own tag, described by prompts or by "
                    "example photos", [common])
    p.add_argument("key", help="stable key, e.g. sample_garment (letters, digits, _ or -)")
    p.add_argument("--zh", required=True, help="Chinese label")
    p.add_argument("--en", required=True, help="English label")
    p.add_argument("--prompt", action="append", help="English description for the model, "
                   "e.g. 'a photo of a garment sample on a hanger' (repeatable)")
    p.add_argument("--example", action="append", metavar="PHOTO", help="an indexed photo "
                   "(id or path) that shows the tag (repeatable)")
    p.add_argument("--threshold", type=float, help="suggest above this probability "
                   "(default: calibrated, 0.5)")

    p = add_command(tsub, "edit", cmd_edit, "change a tag's labels, prompts or threshold, or "
                    "restore a retired tag", [common])
    p.add_argument("tag", help="key or label")
    p.add_argument("--zh", help="new Chinese label")
    p.add_argument("--en", help="new English label")
    p.add_argument("--prompt", action="append", help="new prompts (replace all; repeatable)")
    p.add_argument("--no-prompts", action="store_true", help="drop all prompts: the tag is "
                   "then defined by its accepted photos only")
    p.add_argument("--threshold", metavar="P|auto", help="suggestion threshold (probability) "
                   "or 'auto'")
    p.add_argument("--restore", action="store_true", help="un-retire the tag")

    p = add_command(tsub, "retire", cmd_retire, "stop suggesting a tag (accepted ones stay)",
                    [common])
    p.add_argument("tag", help="key or label")

    p = add_command(tsub, "review", cmd_review, "list suggestions waiting for review, by tag",
                    [common, sel])
    p.add_argument("--tag", help="only this tag (key or label)")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--offset", type=int, default=0, help="skip this many (paging)")

    for name, handler, verb in (("accept", cmd_accept, "accept"),
                                ("reject", cmd_reject, "reject")):
        p = add_command(tsub, name, handler, f"{verb} a tag on photos (ids or paths), or on "
                        "every photo currently suggested for it with --all-suggested",
                        [common, sel])
        p.add_argument("photos", nargs="*", metavar="PHOTO")
        p.add_argument("--tag", required=True, help="key or label")
        p.add_argument("--all-suggested", action="store_true", help=f"{verb} every pending "
                       "suggestion of the tag in the selection (--client, --project, …)")
        p.add_argument("--no-learn", action="store_true", help="do not retrain now (faster "
                       "when deciding in many small steps; `tags refresh --retrain` later)")

    add_command(tsub, "undo", cmd_undo, "undo the last accept/reject", [common])

    p = add_command(tsub, "like", cmd_like, "more like these: rank the library by example "
                    "photos, optionally saving them as a tag", [common, sel])
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    p.add_argument("--unlike", action="append", metavar="PHOTO", help="a counter-example "
                   "(repeatable)")
    p.add_argument("--tag", help="save the examples as this tag (created when new)")
    p.add_argument("--zh", help="Chinese label of a new tag (default: the key)")
    p.add_argument("--en", help="English label of a new tag (default: the key)")
    p.add_argument("-k", type=int, default=20, help="number of results (default 20)")

    p = add_command(tsub, "export-xmp", cmd_export_xmp, "write accepted tags to XMP sidecars "
                    "(dc:subject, lr:hierarchicalSubject); image files are never modified",
                    [common, sel])
    p.add_argument("--to", metavar="DIR", help="write into this folder (mirroring each "
                   "indexed folder) instead of next to the photos")
    p.add_argument("--language", choices=LANGUAGES, default="both", help="which labels "
                   "become keywords (default both)")
    p.add_argument("--full-names", action="store_true", help="name sidecars photo.jpg.xmp "
                   "(darktable, digiKam) instead of photo.xmp")

    p = add_command(tsub, "refresh", cmd_refresh, "recompute all suggestions from stored "
                    "embeddings (no photo is decoded)", [common])
    p.add_argument("--retrain", action="store_true", help="retrain every tag's classifier "
                   "first")
    p.add_argument("--recalibrate", action="store_true", help="measure every tag's score "
                   "distribution over the library again (done by itself when the library "
                   "grew or shrank by more than 10%% since)")
