"""Indexing throughput on 12-megapixel JPEGs: kezhao's pipeline against a naive loop and
against the model alone, for the default and the English presets' architectures.

    .venv/bin/python benchmarks/indexing.py                 # 48 photos per measurement
    .venv/bin/python benchmarks/indexing.py --photos 200 --repeats 3
    .venv/bin/python benchmarks/indexing.py --levers        # also sweep workers/threads/batch

Models are the presets' real architectures with random weights (no download; no semantics):
speed depends on the architecture only. Both presets use the same ViT-B/32 image tower, so
their indexing numbers differ only by noise. Inputs are 4000x3000 JPEGs at quality 90 made
from the real photos in ../shared/testdata (upscaled, with grain), written once to
--work and then read from the page cache, as a re-read library would be.

"naive" is the loop a first version would write: full-resolution decode, open_clip's own
preprocessing, one fp32 forward pass per photo, nothing stored. "kezhao" is
``index_paths`` end to end into a fresh library: scan, hash, draft decode, EXIF, quality,
pHash, thumbnail, embedding, catalog rows and the FAISS index. "model-only" is the
encoder's forward pass on ready batches — the ceiling for that precision.
Ratios compare measurements taken in the same repeat, one right after the other.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import write_camera_jpegs  # noqa: E402

MODES = ("fp32", "bf16", "int8")


def naive_loop(encoder, paths: list[Path]) -> float:
    """Photos per second of decode-everything, preprocess, encode one by one (fp32)."""
    import open_clip
    import torch
    from PIL import Image

    cfg = encoder._model.visual.preprocess_cfg
    preprocess = open_clip.image_transform(
        cfg["size"], is_train=False, mean=cfg["mean"], std=cfg["std"],
        interpolation=cfg["interpolation"], resize_mode=cfg["resize_mode"],
    )
    started = time.perf_counter()
    with torch.inference_mode():
        for path in paths:
            with Image.open(path) as image:
                pixels = preprocess(image.convert("RGB")).unsqueeze(0)
            features = encoder._model.encode_image(pixels)
            torch.nn.functional.normalize(features, dim=-1)
    return len(paths) / (time.perf_counter() - started)


class ImageOnly:
    """The encoder without its text side, so the pipeline's tag-suggestion hook (which
    encodes the whole tag vocabulary once per library) stays out of the throughput; it
    is timed on its own."""

    def __init__(self, encoder) -> None:
        self.model_id, self.image_size = encoder.model_id, encoder.image_size
        self.preprocess = encoder.preprocess
        self.encode_preprocessed = encoder.encode_preprocessed


def kezhao_pipeline(encoder, folder: Path, count: int, work: Path, **options) -> tuple[
    float, dict[str, np.ndarray]
]:
    """Photos per second of index_paths into a fresh library; also its vectors by name."""
    from indexer.library import open_library
    from indexer.pipeline import index_paths

    root = Path(tempfile.mkdtemp(prefix="library-", dir=work))
    try:
        with open_library(root) as library:
            started = time.perf_counter()
            summary = index_paths(library, ImageOnly(encoder), [folder], **options)
            elapsed = time.perf_counter() - started
            if summary.encoded != count:
                raise SystemExit(f"expected {count} photos encoded, got {summary.as_dict()}")
            vectors = {
                Path(library.catalog.get_photo(int(i)).path).name: v
                for ids, block in library.catalog.iter_embeddings()
                for i, v in zip(ids, block, strict=True)
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return count / elapsed, vectors


def tag_hook_seconds(encoder, folder: Path, work: Path) -> tuple[float, float]:
    """Seconds the pipeline's tag-suggestion hook adds: first run of a library (encodes
    the vocabulary) and a later run (scores the new photos only)."""
    from indexer.library import open_library
    from indexer.pipeline import index_paths
    from indexer.tagging import suggest_after_indexing

    root = Path(tempfile.mkdtemp(prefix="library-", dir=work))
    try:
        with open_library(root) as library:
            ids = index_paths(library, ImageOnly(encoder), [folder]).photo_ids
            times = []
            for _ in range(2):
                started = time.perf_counter()
                suggest_after_indexing(library, encoder, ids)
                times.append(time.perf_counter() - started)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return times[0], times[1]


def model_only(encoder, count: int, batch_size: int) -> float:
    import torch

    batch = torch.randn(batch_size, 3, encoder.image_size, encoder.image_size)
    encoder.encode_preprocessed(batch)  # warm-up: first call initialises kernels
    done = 0
    started = time.perf_counter()
    while done < count:
        encoder.encode_preprocessed(batch)
        done += batch_size
    return done / (time.perf_counter() - started)


def decode_costs(paths: list[Path], image_size: int) -> list[tuple[str, float]]:
    """Milliseconds per photo of each way to get pixels for the model (one thread)."""
    from indexer.decode import decode_photo

    ways = [
        ("full decode (min_side=0)", 0),
        (f"draft decode, short side >= {image_size}", image_size),
        ("draft decode, short side >= 384", 384),
    ]
    out = []
    for label, min_side in ways:
        started = time.perf_counter()
        for path in paths:
            decode_photo(path, min_side=min_side)
        out.append((label, 1000 * (time.perf_counter() - started) / len(paths)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=48, help="photos per measurement")
    parser.add_argument("--presets", nargs="+", default=["multilingual", "english"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--repeats", type=int, default=1, help="repeat and take medians")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="pipeline batch size (default: the pipeline's)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--model-threads", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for everything (default: one per core)")
    parser.add_argument("--levers", action="store_true",
                        help="also measure decode modes and worker/thread/batch settings")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "kezhao-bench")
    args = parser.parse_args(argv)

    import torch

    from indexer.pipeline import index_paths
    from models.random_init import random_weight_encoder

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    args.work.mkdir(parents=True, exist_ok=True)
    folder = args.work / f"photos-{args.photos}"
    paths = write_camera_jpegs(folder, args.photos)
    size_mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    print(f"inputs: {len(paths)} JPEGs 4000x3000 q90, {size_mb:.1f} MB each, in {folder}")
    defaults = index_paths.__kwdefaults__
    options = {
        "batch_size": args.batch_size or defaults["batch_size"],
        "workers": args.workers or defaults["workers"],
        "model_threads": args.model_threads or defaults["model_threads"],
    }
    batch = options["batch_size"]
    print(f"pipeline settings: {options} (None = the pipeline's own choice)\n")

    for preset in args.presets:
        encoders = {}
        for mode in args.modes:
            encoders[mode], note = random_weight_encoder(preset, work_dir=args.work,
                                                         precision=mode)
        fp32 = encoders.get("fp32") or random_weight_encoder(preset, work_dir=args.work)[0]
        print(f"## {preset}: {note}")
        rows: dict[str, dict[str, list[float]]] = {m: {} for m in args.modes}
        naive_runs, vectors = [], {}
        for _ in range(args.repeats):
            naive = naive_loop(fp32, paths)
            naive_runs.append(naive)
            for mode in args.modes:
                limit = model_only(encoders[mode], args.photos, batch)
                rate, vectors[mode] = kezhao_pipeline(
                    encoders[mode], folder, len(paths), args.work, **options
                )
                for key, value in (("rate", rate), ("limit", limit),
                                   ("x_naive", rate / naive), ("x_limit", rate / limit)):
                    rows[mode].setdefault(key, []).append(value)
        med = statistics.median
        print(f"naive loop (full decode, open_clip preprocess, fp32, one by one): "
              f"{med(naive_runs):.1f} photos/s")
        print("| mode | kezhao photos/s | model-only photos/s | kezhao / naive | "
              "kezhao / model-only | min cosine to fp32 |")
        print("|---|---|---|---|---|---|")
        for mode in args.modes:
            r = {k: med(v) for k, v in rows[mode].items()}
            cosine = _min_cosine(vectors.get("fp32"), vectors[mode])
            print(f"| {mode} | {r['rate']:.1f} | {r['limit']:.1f} | {r['x_naive']:.2f}x | "
                  f"{r['x_limit']:.0%} | {cosine} |")
        first, later = tag_hook_seconds(encoders[args.modes[0]], folder, args.work)
        print(f"tag-suggestion hook ({args.modes[0]}), not in the rates above: "
              f"{first:.1f} s on a library's first run (encodes the tag vocabulary), "
              f"{later:.2f} s for {len(paths)} photos afterwards\n")
        if args.levers:
            _levers(fp32, encoders, paths, folder, args, options)
            args.levers = False  # the image tower is shared: sweep once
    return 0


def _min_cosine(reference: dict | None, vectors: dict) -> str:
    if reference is None:
        return "n/a"
    cos = [float(np.dot(reference[name], vectors[name])) for name in reference]
    return f"{min(cos):.5f} (mean {np.mean(cos):.5f})"


def _levers(fp32, encoders, paths, folder, args, options) -> None:
    import torch

    print("### decoding (one thread, ms per photo)")
    print("| way | ms/photo |")
    print("|---|---|")
    for label, ms in decode_costs(paths[:16], fp32.image_size):
        print(f"| {label} | {ms:.1f} |")
    print()
    mode = "bf16" if "bf16" in encoders else args.modes[0]
    encoder = encoders[mode]
    cores = os.cpu_count() or 1
    print(f"### pipeline settings ({mode}; photos/s, higher is better)")
    print("| workers | model threads | batch | photos/s | model-only at these threads |")
    print("|---|---|---|---|---|")
    grid = [(w, t, b) for w in (1, 2, 3) for t in (1, cores) for b in (16,)]
    grid += [(options["workers"] or 2, options["model_threads"] or cores, b) for b in (8, 32)]
    for workers, threads, batch in dict.fromkeys(grid):
        rate, _ = kezhao_pipeline(encoder, folder, len(paths), args.work, batch_size=batch,
                                  workers=workers, model_threads=threads)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        limit = model_only(encoder, len(paths), batch)
        torch.set_num_threads(before)
        print(f"| {workers} | {threads} | {batch} | {rate:.1f} | {limit:.1f} |")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
