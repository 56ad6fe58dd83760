"""The `kezhao` command line. Each command is a few lines that call one library function
and print its result as text or, with --json, as JSON for scripts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from indexer.catalog import PhotoFilter
from indexer.errors import KezhaoError
from indexer.pipeline import index_paths
from models import PRESETS, ModelError, download_preset
from search.query import Hit
from ui.context import TINY_MODEL_WARNING, Services, Settings, open_services

Handler = Callable[[Services, argparse.Namespace], int]


# ----------------------------------------------------------------- output
def _emit_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def _filter(args: argparse.Namespace) -> PhotoFilter:
    return PhotoFilter(
        client=args.client, project=args.project, tag=getattr(args, "tag", None),
        since=args.since, until=args.until,
    )


def _print_hits(hits: list[Hit], as_json: bool) -> None:
    if as_json:
        _emit_json([h.as_dict() for h in hits])
        return
    if not hits:
        print("no matching photos")
        return
    for rank, hit in enumerate(hits, 1):
        p = hit.photo
        when = (p.taken_at or "")[:10] or "date unknown"
        print(f"{rank:3d}. {hit.score:6.3f}  #{p.id}  {p.client or '-'}  {when}  {p.path}  "
              f"[{hit.reason}]")


class _TqdmProgress:
    """Progress bar with count, rate and ETA on stderr (silent when not a terminal)."""

    def __init__(self, desc: str = "indexing") -> None:
        self._bar = None
        self._desc = desc

    def start(self, total: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="photo", desc=self._desc, file=sys.stderr,
                         disable=None, dynamic_ncols=True)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _note_model(services: Services) -> None:
    if services.preset == "tiny-test" and services.settings.checkpoint is None:
        _warn(TINY_MODEL_WARNING)


# --------------------------------------------------------------- commands
def cmd_index(services: Services, args: argparse.Namespace) -> int:
    _note_model(services)
    summary = index_paths(
        services.library, services.encoder(), [Path(p) for p in args.paths],
        client=args.client, progress=_TqdmProgress(),
    )
    ocr = _read_text_if_asked(services, args)
    if args.json:
        _emit_json({**summary.as_dict(), **({"ocr": ocr.as_dict()} if ocr else {})})
        return 0
    print(
        f"new {summary.new}, changed {summary.changed}, moved {summary.moved}, "
        f"unchanged {summary.unchanged}, missing {summary.missing}, failed {summary.failed}"
    )
    for path, reason in summary.skipped_roots:
        _warn(f"skipped {path}: {reason}")
    for path, reason, message in summary.failures:
        _warn(f"skipping {path}: {message} [{reason}]")
    if summary.failed:
        print("see `kezhao failures` for every file that could not be indexed")
    if ocr is not None:
        from ui.commands_ocr import print_ocr_summary

        print_ocr_summary(ocr)
    return 0


def _read_text_if_asked(services: Services, args: argparse.Namespace):
    """`index --ocr`: the separate text-reading pass, right after indexing."""
    if not getattr(args, "ocr", False):
        return None
    from ui.commands_ocr import run_ocr_pass

    return run_ocr_pass(services, args)


def cmd_search(services: Services, args: argparse.Namespace) -> int:
    from search.hybrid import HybridSearch

    if not args.text_only:
        _note_model(services)
    hits = HybridSearch(services.search).search(
        args.query, _filter(args), args.k, text_only=args.text_only, has_text=args.has_text
    )
    _print_hits(hits, args.json)
    return 0


def cmd_similar(services: Services, args: argparse.Namespace) -> int:
    ref = services.search.resolve_photo(args.photo)
    if isinstance(ref, int):
        hits = services.search.similar(ref, _filter(args), args.k)
    else:
        _note_model(services)
        hits = services.search.by_image(ref, _filter(args), args.k)
    _print_hits(hits, args.json)
    return 0


def cmd_clients(services: Services, args: argparse.Namespace) -> int:
    clients = services.library.catalog.clients()
    if args.json:
        _emit_json([{"client": c.name, "photos": c.photos} for c in clients])
    elif not clients:
        print("no clients yet — index a folder with `kezhao index PATH`")
    for c in clients if not args.json else []:
        print(f"{c.photos:7d}  {c.name}")
    return 0


def cmd_status(services: Services, args: argparse.Namespace) -> int:
    catalog = services.library.catalog
    index = services.search.vector_index()
    health = services.search.health
    data = {
        "library": str(services.library.root),
        "photos": catalog.status_counts(),
        "clients": len(catalog.clients()),
        "roots": [r.path for r in catalog.roots()],
        "model": catalog.model_id(),
        "failures": catalog.failure_reasons(),
        "index": {
            "state": health.state if health else "empty",
            "vectors": index.size if index else 0,
            "generation": catalog.vectors_generation(),
            "detail": health.detail if health else "no photos indexed yet",
        },
    }
    if args.json:
        _emit_json(data)
        return 0
    counts = data["photos"]
    print(f"library   {data['library']}")
    print(f"model     {data['model'] or 'none yet'}")
    print(f"photos    {counts.get('ok', 0)} searchable, {counts.get('missing', 0)} missing, "
          f"{counts.get('trashed', 0)} in trash, {counts.get('failed', 0)} failed")
    print(f"clients   {data['clients']}")
    print(f"index     {data['index']['state']}: {data['index']['vectors']} vectors "
          f"({data['index']['detail']})")
    for root in data["roots"]:
        print(f"folder    {root}")
    for reason, n in sorted(data["failures"].items()):
        print(f"failed    {n} × {reason}")
    return 0


def cmd_failures(services: Services, args: argparse.Namespace) -> int:
    failures = services.library.catalog.failures()
    if args.json:
        _emit_json([f.__dict__ for f in failures])
        return 0
    if not failures:
        print("no failures")
    for f in failures:
        print(f"{f.reason:12s} {f.path}: {f.message}")
    return 0


def cmd_set_client(services: Services, args: argparse.Namespace) -> int:
    ids = []
    for ref in args.photos:
        resolved = services.search.resolve_photo(ref)
        if not isinstance(resolved, int):
            raise KezhaoError(f"{ref} is not an indexed photo")
        ids.append(resolved)
    changed = services.library.catalog.set_client(ids, args.to or None)
    print(f"client of {changed} photo(s) set to {args.to or '(none)'}")
    return 0


def cmd_models_download(services: Services, args: argparse.Namespace) -> int:
    preset = args.preset or services.preset
    files = download_preset(preset, services.library.models_dir)
    print(f"{preset}: {len(files)} file(s) ready in {services.library.models_dir}")
    return 0


def cmd_models_list(services: Services, args: argparse.Namespace) -> int:
    rows = [
        {"preset": p.name, "arch": p.arch, "pretrained": p.pretrained,
         "description": p.description}
        for p in PRESETS.values()
    ]
    if args.json:
        _emit_json(rows)
        return 0
    for row in rows:
        print(f"{row['preset']:13s} {row['arch']} / {row['pretrained'] or '-'}: "
              f"{row['description']}")
    return 0


def cmd_ui(services: Services, args: argparse.Namespace) -> int:
    from ui.app import launch

    if args.paths:
        cmd_index(services, argparse.Namespace(paths=args.paths, client=None, json=False))
    _note_model(services)
    launch(services, host=args.host, port=args.port, open_browser=not args.no_browser)
    return 0


# ----------------------------------------------------------------- parser
def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--library", help="library folder (default: $KEZHAO_LIBRARY or "
                        "~/.local/share/kezhao)")
    common.add_argument("--model", choices=sorted(PRESETS), help="model preset "
                        "(default: $KEZHAO_MODEL, the library's model, or multilingual)")
    common.add_argument("--checkpoint", help="local open_clip checkpoint for the preset's "
                        "architecture")
    common.add_argument("--precision", choices=["fp32", "bf16", "int8"],
                        help="model precision (default: $KEZHAO_PRECISION, else bf16 on CPUs "
                        "with native bf16, else fp32)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


def _filters() -> argparse.ArgumentParser:
    flt = argparse.ArgumentParser(add_help=False)
    flt.add_argument("--client", help="only this client's photos")
    flt.add_argument("--project", help="only this project")
    flt.add_argument("--tag", help="only photos with this accepted tag")
    flt.add_argument("--since", type=_parse_date, help="taken on or after YYYY-MM-DD")
    flt.add_argument("--until", type=_parse_date, help="taken on or before YYYY-MM-DD")
    flt.add_argument("-k", type=int, default=20, help="number of results (default 20)")
    return flt


@dataclass(frozen=True)
class CommandParents:
    """Shared option groups, handed to each feature's `register` so every command
    takes --library/--model/--json and the same filters."""

    common: argparse.ArgumentParser
    filters: argparse.ArgumentParser


def add_command(
    sub: argparse._SubParsersAction, name: str, handler: Handler, help_: str,
    parents: Sequence[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, parents=list(parents), help=help_, description=help_)
    p.set_defaults(handler=handler)
    return p


def _feature_registrars() -> list[Callable[[argparse._SubParsersAction, CommandParents], None]]:
    """Command groups that live in their own modules (tags, cleanup, text)."""
    import importlib

    registrars = []
    for name in FEATURE_COMMAND_MODULES:
        registrars.append(importlib.import_module(name).register)
    return registrars


FEATURE_COMMAND_MODULES: tuple[str, ...] = (
    "ui.commands_ocr", "ui.commands_cleanup", "ui.commands_tags",
)


def build_parser() -> argparse.ArgumentParser:
    common, flt = _common(), _filters()
    parser = argparse.ArgumentParser(
        prog="kezhao", description="kezhao (客照): find and tidy client photos.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_: str, parents=(common,)) -> argparse.ArgumentParser:
        return add_command(sub, name, handler, help_, parents)

    p = add("index", cmd_index, "index folders of photos (incremental)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--client", help="client of every photo in these folders")
    p.add_argument("--ocr", action="store_true", help="then read the text in new photos "
                   "(same as `kezhao ocr`)")

    p = add("search", cmd_search, "find photos by words (中文 or English)", (common, flt))
    p.add_argument("query")
    p.add_argument("--text-only", action="store_true", help="match only the text read in "
                   "photos (no CLIP model needed)")
    p.add_argument("--has-text", action="store_true", help="only photos with text in them")

    p = add("similar", cmd_similar, "find photos like an indexed photo (id or path) or any "
            "image file", (common, flt))
    p.add_argument("photo", metavar="PHOTO_PATH_OR_ID")

    add("clients", cmd_clients, "list clients with photo counts")
    add("status", cmd_status, "show the library: photos, failures, model, index health")
    add("failures", cmd_failures, "list files that could not be indexed, with reasons")

    p = add("set-client", cmd_set_client, "correct the client of photos (ids or paths)")
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    p.add_argument("--to", required=True, metavar="CLIENT", help="new client ('' for none)")

    models = sub.add_parser("models", help="list or download model presets")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = msub.add_parser("download", parents=[common], help="fetch all files of a preset for "
                        "offline use")
    p.add_argument("preset", nargs="?", choices=sorted(PRESETS))
    p.set_defaults(handler=cmd_models_download)
    p = msub.add_parser("list", parents=[common], help="list model presets")
    p.set_defaults(handler=cmd_models_list)

    p = add("ui", cmd_ui, "open the web app (indexing PATHs first, if given)")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    for register in _feature_registrars():
        register(sub, CommandParents(common, flt))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(
            library=args.library, model=args.model, checkpoint=args.checkpoint,
            precision=args.precision,
        )
        services = open_services(settings)
    except (KezhaoError, ModelError) as err:
        _warn(f"error: {err}")
        return 2
    try:
        return args.handler(services, args)
    except (KezhaoError, ModelError) as err:
        _warn(f"error: {err}")
        return 2
    except KeyboardInterrupt:
        _warn("interrupted; what was indexed so far is kept")
        return 130
    finally:
        services.close()


if __name__ == "__main__":
    sys.exit(main())
