"""What keeping tag suggestions up to date costs on a large library.

    .venv/bin/python benchmarks/tag_refresh.py                  # 100k photos
    .venv/bin/python benchmarks/tag_refresh.py --photos 20000 --rounds 2

Builds a library of synthetic catalog rows (embeddings shaped like a photo library's CLIP
vectors, see _synthetic.py) with the built-in vocabulary of 56 tags, whose prompt vectors
come from the same synthetic world (a stand-in text encoder: no model, no download), then
measures, side by side in one run:

1. **Index-run hook** — suggestions for 100 photos just added: kezhao's incremental path
   (`suggest_after_indexing`: score the new photos against the stored calibration) against
   the full path every index run used to take (a fresh service, `refresh(recalibrate=True)`:
   read every embedding, recalibrate every tag, rescore every photo).
2. **One review click in the web app** — accept one suggestion and learn from it, in the
   app's long-lived service (embedding matrix cached): kezhao (retrain that tag, recalibrate
   it alone, rescore it where it can change) against retraining that tag and then
   recalibrating and rescoring everything, as each click used to.
3. **The same click from the command line** (`kezhao tags accept`, a fresh process: the
   matrix is read once either way).

Times are medians over --rounds repetitions; "speed-up" is baseline / kezhao.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _synthetic import VectorWorld  # noqa: E402

MODEL_ID = "synthetic:tag-refresh-benchmark"


class SyntheticTextEncoder:
    """Prompt vectors from the synthetic world: each prompt a text-like vector near one
    scene (chosen by the prompt's checksum), so tags pick out a few photos as real prompts
    do. Stands in for the text tower, whose cost is not what is measured here."""

    model_id = MODEL_ID

    def __init__(self, world: VectorWorld) -> None:
        self.world = world

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return np.vstack([self.world.text_queries(1, seed=zlib.crc32(t.encode("utf-8")))
                          for t in texts])


def build_library(root: Path, world: VectorWorld, n: int):
    from indexer.library import open_library

    library = open_library(root)
    start = 0
    for vectors in world.photos(n):
        add_photos(library, vectors, start)
        start += len(vectors)
    library.catalog.bump_vectors_generation()
    return library


def add_photos(library, vectors: np.ndarray, start: int) -> list[int]:
    from indexer.catalog import PhotoRecord

    ids: list[int] = []
    rows = [(PhotoRecord(path=f"/photos/{start + i}.jpg", root_id=None, size=1, mtime_ns=1,
                         content_hash=f"h{start + i}", client=f"客户{(start + i) % 50:02d}"), v)
            for i, v in enumerate(vectors)]
    for at in range(0, len(rows), 5000):
        ids.extend(library.catalog.save_photos(rows[at:at + 5000], MODEL_ID))
    return ids


def timed(action: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def run(n: int, new: int, rounds: int, workdir: Path) -> list[tuple[str, float, float, str]]:
    from indexer.tagging import TagService, suggest_after_indexing

    world = VectorWorld.create(n + new * (rounds + 2), seed=0)
    encoder = SyntheticTextEncoder(world)
    extra = world.photos(new * (rounds + 2), seed=99, chunk=new)
    print(f"building a library of {n:,} photos …", flush=True)
    library = build_library(workdir / "library", world, n)
    service = TagService(library, lambda: encoder)
    first, report = timed(service.refresh)
    print(f"first calibration and suggestions: {first:.1f} s, {report.written:,} suggestions "
          f"over {report.tags} tags", flush=True)

    hook_new, hook_old, notes = [], [], []
    start = n
    for _ in range(rounds):
        ids = add_photos(library, next(extra), start)
        start += new
        library.catalog.bump_vectors_generation()
        t_new, rep = timed(lambda ids=ids: suggest_after_indexing(library, encoder, ids))
        assert rep is not None and rep.error is None and rep.photos == new, rep
        t_old, old = timed(lambda: TagService(library, lambda: encoder).refresh(
            recalibrate=True))
        hook_new.append(t_new)
        hook_old.append(t_old)
        notes.append(f"{rep.photos} vs {old.photos:,} photos scored")

    app = TagService(library, lambda: encoder)
    tag = max(app.pending_by_tag(), key=lambda c: c.count).tag_key
    queue = [s.photo_id for s in app.pending(tag=tag, limit=4 * rounds + 4)]
    app.accept([queue.pop()], tag)  # warm the app's matrix cache, as a first click does
    click_new, click_old, click_notes = [], [], []
    for _ in range(rounds):
        t_new, decision = timed(lambda: app.accept([queue.pop()], tag))
        click_new.append(t_new)
        click_notes.append(decision.refresh.photos)

        def old_click() -> None:
            app.accept([queue.pop()], tag, learn=False)
            app.retrain([tag])
            app.refresh(recalibrate=True)

        click_old.append(timed(old_click)[0])

    cli_new, cli_old = [], []
    for _ in range(max(1, rounds // 2)):
        cli_new.append(timed(lambda: TagService(library, lambda: encoder).accept(
            [queue.pop()], tag))[0])

        def old_cli() -> None:
            fresh = TagService(library, lambda: encoder)
            fresh.accept([queue.pop()], tag, learn=False)
            fresh.retrain([tag])
            fresh.refresh(recalibrate=True)

        cli_old.append(timed(old_cli)[0])
    library.close()
    med = statistics.median
    return [
        (f"index-run hook, {new} new photos", med(hook_old), med(hook_new), notes[-1]),
        (f"review click ({tag}), web app", med(click_old), med(click_new),
         f"{int(med(click_notes)):,} of {start:,} photos rescored"),
        (f"review click ({tag}), command line", med(cli_old), med(cli_new),
         "matrix read once in both"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=100, help="photos added per index run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kezhao-tag-refresh-") as tmp:
        rows = run(args.photos, args.new, args.rounds, Path(tmp))
    print(f"\n{args.photos:,} photos, 56 tags, median of {args.rounds} rounds\n")
    print(f"| {'case':<42} | {'baseline s':>10} | {'kezhao s':>9} | {'speed-up':>8} | note")
    print(f"|{'-' * 44}|{'-' * 12}|{'-' * 11}|{'-' * 10}|------")
    for case, old, new, note in rows:
        print(f"| {case:<42} | {old:>10.3f} | {new:>9.3f} | {old / new:>7.1f}× | {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
