"""Keeping the vector index current: update in place vs rebuild from the catalog.

    .venv/bin/python benchmarks/index_update.py                     # 1,000,000 photos
    .venv/bin/python benchmarks/index_update.py --sizes 100000      # quick

For each size a real library is built (catalog rows with synthetic 512-d embeddings shaped
like a photo library's CLIP vectors, see _synthetic.py) and its index built once. Then one
round of everyday changes hits the catalog — ``--add`` new photos, ``--trash`` photos put
in the trash, ``--change`` photos whose file got new content — leaving the library at the
given size. Measured side by side in the same run:

* *rebuild* — what every change cost before: the whole index from the catalog
  (``VectorStore.rebuild``: reads every vector; above 100k photos also trains the cells);
* *end of an indexing run* — ``VectorStore.sync``: with a few changes it only counts
  them (each load applies them from the catalog), with ≥ 1% it updates and saves the file;
* *load the stale file* — ``VectorStore.load``: read it, apply the catalog's changes
  since its mark (what a freshly started web app or CLI search does);
* *in memory* — ``VectorStore.refresh`` of an index already loaded (what a running web
  app does after a trash click), split into reading the changes from the catalog,
  removing and adding;
* *writing the file back* — the save that the updated file costs once enough changed.

Recall@10 against exact brute force shows the updated approximate index (cells trained
before the change) finds what a fresh rebuild finds.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import VectorWorld  # noqa: E402


def _rows(vectors: np.ndarray, start: int):
    from indexer.catalog import PhotoRecord

    return [
        (PhotoRecord(path=f"/photos/{start + i}.jpg", root_id=None, size=1, mtime_ns=1,
                     content_hash=f"h{start + i}", client=f"客户{(start + i) % 50:02d}"), v)
        for i, v in enumerate(vectors)
    ]


def build_library(root: Path, world: VectorWorld, n: int):
    """A library of n photos with synthetic embeddings; returns it and the photo ids."""
    from indexer.library import open_library

    library = open_library(root)
    ids: list[int] = []
    start = 0
    for vectors in world.photos(n):
        for offset in range(0, len(vectors), 5000):
            block = vectors[offset:offset + 5000]
            ids.extend(library.catalog.save_photos(_rows(block, start), "benchmark"))
            start += len(block)
    return library, np.asarray(ids, dtype=np.int64)


def change_catalog(library, world, ids, args, seed: int) -> dict[str, float]:
    """One round of everyday changes, through the catalog's own verbs."""
    catalog = library.catalog
    rng = np.random.default_rng(seed)
    timings = {}
    new = np.vstack(list(world.photos(args.add, seed=seed + 1)))
    started = time.perf_counter()
    catalog.save_photos(_rows(new, 10_000_000 + seed * 100_000), "benchmark")
    timings["add"] = time.perf_counter() - started
    picked = rng.choice(len(ids), args.trash + args.change, replace=False)
    started = time.perf_counter()
    for photo_id in ids[picked[:args.trash]]:
        trash_id = catalog.journal_trash(int(photo_id), f"/photos/{photo_id}.jpg",
                                         f"trash/{photo_id}.jpg", 1, "h", "benchmark")
        catalog.finish_trash(trash_id)
    timings["trash"] = time.perf_counter() - started
    changed = [catalog.get_photo(int(i)).path for i in ids[picked[args.trash:]]]
    fresh = np.vstack(list(world.photos(len(changed), seed=seed + 2)))
    rows = _rows(fresh, 0)
    for (record, _), path in zip(rows, changed, strict=True):
        record.path, record.content_hash = path, f"{path}-new"  # same file, new content
    started = time.perf_counter()
    catalog.save_photos(rows, "benchmark")
    timings["change"] = time.perf_counter() - started
    return timings


@contextmanager
def kept_as_is(store):
    """Measure something that may rewrite the index file, then put the stale file (same
    inode, so its stamp still names it) and its stamp back for the next measurement."""
    keep = store.path.with_name(store.path.name + ".keep")
    os.link(store.path, keep)
    stamp = store.stamp_path.read_text()
    try:
        yield
    finally:
        if os.path.samefile(keep, store.path):  # untouched (rename would be a no-op)
            os.unlink(keep)
        else:
            os.replace(keep, store.path)
        store.stamp_path.write_text(stamp)


@contextmanager
def timed_calls(owner, name: str, totals: dict[str, float]):
    """Add up the time spent in ``owner.name`` while the block runs."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - started

    setattr(owner, name, wrapper)
    try:
        yield totals
    finally:
        setattr(owner, name, original)


def recall_of(index, catalog, text_q, rng) -> tuple[float, float]:
    """Recall@10 of text-like and photo queries against brute force over the catalog."""
    cat_ids, blocks = zip(*catalog.iter_embeddings(), strict=True)
    cat_ids, vectors = np.concatenate(cat_ids), np.vstack(blocks)
    del blocks
    photo_q = vectors[rng.integers(0, len(vectors), len(text_q))]
    return (recall_at_10(index, cat_ids, vectors, text_q),
            recall_at_10(index, cat_ids, vectors, photo_q))


def recall_at_10(index, ids, vectors, queries) -> float:
    scores = queries @ vectors.T
    recalls = []
    for query, row in zip(queries, scores, strict=True):
        want = set(ids[np.argpartition(-row, 10)[:10]].tolist())
        got = {h.photo_id for h in index.search(query, 10)}
        recalls.append(len(got & want) / 10)
    return float(np.mean(recalls))


def run_size(n: int, args, work: Path) -> None:
    from indexer.catalog import Catalog
    from indexer.vectors import VectorIndex, VectorStore

    world = VectorWorld.create(n, seed=n)
    start_size = n - args.add + args.trash  # so the library has n photos after the changes
    started = time.perf_counter()
    library, ids = build_library(work / f"library-{n}", world, start_size)
    setup = time.perf_counter() - started
    store = library.vectors
    started = time.perf_counter()
    in_memory = store.rebuild(library.catalog)
    first_build = time.perf_counter() - started
    rng = np.random.default_rng(n)
    text_q = world.text_queries(args.queries, seed=n + 7)
    before = recall_of(in_memory, library.catalog, text_q, rng)
    edits = change_catalog(library, world, ids, args, seed=n % 997)
    catalog = library.catalog
    count = catalog.searchable_count()

    with kept_as_is(store):
        totals: dict[str, float] = {}
        with timed_calls(Catalog, "vector_changes_since", totals), \
                timed_calls(VectorIndex, "_remove", totals), \
                timed_calls(VectorIndex, "apply", totals):
            started = time.perf_counter()
            in_memory, mem_health = store.refresh(in_memory, catalog)
            refresh = time.perf_counter() - started
        del in_memory
        gc.collect()
    with kept_as_is(store):
        started = time.perf_counter()
        sync_health = store.sync(catalog)
        sync = time.perf_counter() - started
    with kept_as_is(store):
        started = time.perf_counter()
        updated, file_health = store.load(catalog)
        from_file = time.perf_counter() - started
    with kept_as_is(store):
        started = time.perf_counter()
        store.save(updated)
        write_back = time.perf_counter() - started
        started = time.perf_counter()
        _, current_health = store.load(catalog)
        read_current = time.perf_counter() - started
        assert current_health.state == "ok", current_health

    started = time.perf_counter()
    rebuilt = VectorStore(work / f"rebuilt-{n}.faiss").rebuild(catalog)
    rebuild = time.perf_counter() - started

    after = recall_of(updated, catalog, text_q, np.random.default_rng(n + 1))
    fresh = recall_of(rebuilt, catalog, text_q, np.random.default_rng(n + 1))

    kind = updated.kind
    cells = (f", {updated._index.nlist} cells (placed for {updated.trained_for:,}), "
             f"{updated._index.nprobe} probed" if kind == "approximate" else "")
    print(f"## {count:,} photos after +{args.add:,} added, {args.trash:,} trashed, "
          f"{args.change:,} changed — {kind} index{cells}")
    print(f"(library set up in {setup:.0f} s; first build {first_build:.1f} s; catalog "
          f"writes: add {edits['add']:.2f} s, trash {edits['trash']:.2f} s, change "
          f"{edits['change']:.2f} s; load average {os.getloadavg()[0]:.1f})\n")
    apply = totals.get("apply", 0.0)
    removing = totals.get("_remove", 0.0)
    print("| way to bring the index up to date | state | seconds | vs rebuild |")
    print("|---|---|---|---|")
    print(f"| rebuild from the catalog (baseline: after every change, before) | rebuilt | "
          f"{rebuild:.2f} | 1× |")
    rows = [
        (f"end of an indexing run, `sync` ({sync_health.detail})", sync_health.state, sync),
        (f"load the stale file, update in place ({file_health.detail})", file_health.state,
         from_file),
        ("index in memory (web app), update in place", mem_health.state, refresh),
    ]
    for label, state, seconds in rows:
        print(f"| {label} | {state} | {seconds:.3f} | {rebuild / seconds:.0f}× faster |")
    print(f"| ↳ read the changes from the catalog (one snapshot, count included) | | "
          f"{totals.get('vector_changes_since', 0):.3f} | |")
    print(f"| ↳ remove the {args.add + args.trash + args.change:,} changed ids | | "
          f"{removing:.3f} | |")
    print(f"| ↳ add {args.add + args.change:,} vectors | | {apply - removing:.3f} | |")
    print(f"| writing the updated file back (done once ≥ 1% changed) | | {write_back:.2f} | |")
    print(f"| (reference: loading a current file, read only) | ok | {read_current:.2f} | |")
    print()
    print(f"recall@10 against exact search, {args.queries} text-like and {args.queries} "
          "photo queries:\n")
    print("| index | text recall@10 | photo recall@10 |")
    print("|---|---|---|")
    for label, (text, photo) in (
        ("first build, before the changes", before),
        ("the same index updated in place, after", after),
        ("fresh rebuild, after (cells trained anew)", fresh),
    ):
        print(f"| {label} | {text:.3f} | {photo:.3f} |")
    print()
    library.close()
    del updated, rebuilt
    gc.collect()
    shutil.rmtree(work / f"library-{n}", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--add", type=int, default=1000)
    parser.add_argument("--trash", type=int, default=100)
    parser.add_argument("--change", type=int, default=100)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    work = Path(tempfile.mkdtemp(prefix="kezhao-update-", dir=args.work))
    try:
        for n in args.sizes:
            run_size(n, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
