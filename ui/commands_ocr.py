"""`kezhao ocr` (read the text in photos) and `kezhao show` (one photo's details).

Thin adapters: each handler makes one call into `indexer` and prints the result as text
or, with --json, as JSON.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from indexer.errors import KezhaoError
from indexer.ocr import OcrSummary, read_text
from models.ocr import load_ocr_engine
from ui.cli import CommandParents, _emit_json, _TqdmProgress, _warn, add_command
from ui.context import Services


def run_ocr_pass(services: Services, args: argparse.Namespace) -> OcrSummary:
    """The text-reading pass with a progress bar; shared by `ocr` and `index --ocr`."""
    engine = load_ocr_engine(threads=getattr(args, "threads", None))
    return read_text(
        services.library,
        engine,
        progress=_TqdmProgress("reading text"),
        reread=getattr(args, "reread", False),
        retry_failed=getattr(args, "retry_failed", False),
    )


def print_ocr_summary(summary: OcrSummary) -> None:
    print(
        f"text read in {summary.read} photo(s): {summary.with_text} with text, "
        f"{summary.without_text} without; failed {summary.failed}, "
        f"skipped {len(summary.skipped)}"
    )
    for path, message in summary.skipped:
        _warn(f"not read {path}: {message}")
    for path, message in summary.failures:
        _warn(f"cannot read text in {path}: {message}")


def cmd_ocr(services: Services, args: argparse.Namespace) -> int:
    summary = run_ocr_pass(services, args)
    if args.json:
        _emit_json({**summary.as_dict(), "library": services.library.catalog.ocr_state_counts()})
        return 0
    print_ocr_summary(summary)
    return 0


def _photo_id(services: Services, ref: str) -> int:
    resolved = services.search.resolve_photo(ref)
    if not isinstance(resolved, int):
        raise KezhaoError(f"{ref} is not an indexed photo")
    return resolved


def photo_details(services: Services, photo_id: int) -> dict:
    """Everything `show` prints, as one JSON-ready dict."""
    catalog = services.library.catalog
    photo = catalog.get_photo(photo_id)
    if photo is None:
        raise KezhaoError(f"no photo with id {photo_id}")
    data = asdict(photo)
    data["tags"] = list(photo.tags)
    read = catalog.ocr_read(photo_id)
    data["text"] = read.as_dict() if read is not None else None
    return data


def _size_text(data: dict) -> str:
    dims = f"{data['width']}×{data['height']}" if data["width"] else "size unknown"
    kind = f" {data['format']}" if data["format"] else ""
    size = data["size"]
    amount = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{max(1, round(size / 1e3))} kB"
    return f"{dims}{kind}, {amount}"


def _text_lines(text: dict | None) -> list[str]:
    if text is None:
        return ["not read yet (run `kezhao ocr`)"]
    if not text["current"]:
        return ["the photo changed since its text was read; run `kezhao ocr` again"]
    if text["state"] == "failed":
        return [f"could not be read: {text['message']}"]
    if text["state"] == "no_text":
        return ["no text found"]
    return [f"{line['text']}   ({line['confidence']:.2f})" for line in text["lines"]]


def cmd_show(services: Services, args: argparse.Namespace) -> int:
    data = photo_details(services, _photo_id(services, args.photo))
    if args.json:
        _emit_json(data)
        return 0
    camera = " ".join(filter(None, (data["camera_make"], data["camera_model"]))) or "-"
    taken = (data["taken_at"] or "unknown").replace("T", " ")
    rows = [
        ("path", data["path"]),
        ("client", f"{data['client'] or '-'}"
                   + (f" ({data['client_source']})" if data["client_source"] else "")),
        ("project", data["project"] or "-"),
        ("taken", taken + (f" ({data['taken_at_source']})" if data["taken_at_source"] else "")),
        ("camera", camera),
        ("size", _size_text(data)),
        ("tags", ", ".join(data["tags"]) or "-"),
        ("status", data["status"]),
    ]
    print(f"photo #{data['id']}")
    for label, value in rows:
        print(f"  {label:8s} {value}")
    for i, line in enumerate(_text_lines(data["text"])):
        print(f"  {'text' if i == 0 else '':8s} {line}")
    return 0


def register(sub: argparse._SubParsersAction, parents: CommandParents) -> None:
    p = add_command(sub, "ocr", cmd_ocr, "read the text in photos (only those not read yet)",
                    [parents.common])
    p.add_argument("--reread", action="store_true",
                   help="also re-read photos read by another OCR model version")
    p.add_argument("--retry-failed", action="store_true",
                   help="try photos whose text could not be read again")
    p.add_argument("--threads", type=int, help="CPU threads for the OCR model "
                   "(default: all cores)")
    p = add_command(sub, "show", cmd_show, "show one photo's details and the text found in it",
                    [parents.common])
    p.add_argument("photo", metavar="PHOTO_ID_OR_PATH")
