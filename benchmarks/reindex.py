"""Re-indexing an unchanged library: 100,000 catalogued photos re-scanned, nothing decoded.

    .venv/bin/python benchmarks/reindex.py                  # 100k photos
    .venv/bin/python benchmarks/reindex.py --photos 20000

The library is made in the run: real small JPEGs (hard links to copies of a real camera
JPEG from ../shared/testdata, in client/project folders as a studio keeps them) and a
catalog row with an embedding for each, as a previous run would have left. The baseline is
the least any re-scan must do: walk the same folders and stat every file. kezhao's re-scan
is ``index_paths`` with an encoder that fails the run if it is ever asked for a photo, so
"no decoding" is checked, not assumed. The pipeline's tag-suggestion hook is not called
(the stand-in encoder has no text side); with no new photos it has nothing to score.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "photos"
MODEL_ID = "benchmark:reindex"


class MustNotEncode:
    """An encoder for a library that must not need one."""

    model_id = MODEL_ID
    image_size = 224

    def preprocess(self, image):
        raise AssertionError("a photo was decoded during an unchanged re-scan")

    def encode_preprocessed(self, batch):
        raise AssertionError("a photo was encoded during an unchanged re-scan")


def make_tree(root: Path, count: int, per_folder: int = 100) -> list[Path]:
    """``count`` hard links to copies of one real JPEG, under client/project folders
    (a fresh copy every 50,000 links: ext4 allows 65,000 links to one file)."""
    paths = []
    for i in range(count):
        if i % 50_000 == 0:
            source = root / f"source-{i}.jpg"
            shutil.copyfile(TESTDATA / "jpg" / "Canon_40D.jpg", source)
        client, project = i // (per_folder * 10), i // per_folder
        folder = root / "photos" / f"客户{client:03d}" / f"项目{project:05d}"
        if i % per_folder == 0:
            folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"IMG_{i:06d}.jpg"
        os.link(source, path)
        paths.append(path)
    return paths


def fill_catalog(library, root: Path, paths: list[Path], dim: int = 512) -> None:
    """Catalog rows for every file with its real size and mtime, as indexing leaves them."""
    from indexer.catalog import PhotoRecord

    root_id = library.catalog.add_root(str(root)).id
    rng = np.random.default_rng(0)
    for start in range(0, len(paths), 5000):
        chunk = paths[start:start + 5000]
        vectors = rng.standard_normal((len(chunk), dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = []
        for path, vector in zip(chunk, vectors, strict=True):
            st = path.stat()
            record = PhotoRecord(path=str(path), root_id=root_id, size=st.st_size,
                                 mtime_ns=st.st_mtime_ns, content_hash=f"{start}-{path.name}",
                                 client=path.parent.parent.name, client_source="folder",
                                 project=path.parent.name)
            rows.append((record, vector))
        library.catalog.save_photos(rows, MODEL_ID)
    library.catalog.bump_vectors_generation()
    library.vectors.rebuild(library.catalog)


def walk_and_stat(root: Path) -> int:
    count = 0
    for folder, _, files in os.walk(root):
        for name in files:
            os.stat(os.path.join(folder, name))
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    args = parser.parse_args(argv)

    from indexer.library import open_library
    from indexer.pipeline import index_paths

    work = Path(tempfile.mkdtemp(prefix="kezhao-reindex-", dir=args.work))
    try:
        started = time.perf_counter()
        paths = make_tree(work, args.photos)
        photos = work / "photos"
        with open_library(work / "library") as library:
            fill_catalog(library, photos, paths)
            setup = time.perf_counter() - started
            print(f"setup: {args.photos:,} files and catalog rows in {setup:.0f} s "
                  f"(not timed below); load average {os.getloadavg()[0]:.1f}")
            print("| run | walk + stat s | kezhao re-scan s | kezhao / walk | µs per photo | "
                  "unchanged | encoded |")
            print("|---|---|---|---|---|---|---|")
            for run in range(1, args.repeats + 1):
                t0 = time.perf_counter()
                seen = walk_and_stat(photos)
                walk = time.perf_counter() - t0
                t0 = time.perf_counter()
                summary = index_paths(library, MustNotEncode(), [photos])
                rescan = time.perf_counter() - t0
                assert seen == args.photos and summary.unchanged == args.photos, summary
                assert summary.encoded == 0 and not summary.changed_anything
                print(f"| {run} | {walk:.2f} | {rescan:.2f} | {rescan / walk:.1f}x | "
                      f"{1e6 * rescan / args.photos:.0f} | {summary.unchanged:,} | "
                      f"{summary.encoded} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
