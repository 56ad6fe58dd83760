"""Benchmark: near-duplicate groups (precision, recall, keeper) and the all-pairs pass speed.

Part 1 — quality. Plants copies of real photos (../shared/testdata) and of generated scenes
among distinct photos: resized to 50%, re-saved at JPEG quality 60, cropped by 5% (2.5% off
each edge), brightened by 10%, re-saved as PNG. Generated scenes also get a *burst* sibling
(the same scene with one object moved), which is a different photo: `near` should keep it
apart, `similar` may join it. Everything is indexed with the tiny test model, which has NO
semantics — every pair of photos looks alike to it — so the embedding half of the test is
weak here and the perceptual hash carries it; with a real CLIP model both halves work.
Prints, for each strictness, pair precision and recall of the groups against the planted
truth, the share of planted sets found exactly, burst pairs grouped, and how often the
suggested keeper is the original.

Part 2 — speed. Times the whole duplicate pass (FAISS range search + hash test + grouping)
on synthetic clustered 512-d vectors at 10k and 100k, next to exhaustive flat search
measured on a slice in the same run (the baseline), and checks the pairs found at 100k
against brute force for a sample of photos.

Usage: .venv/bin/python benchmarks/duplicates.py [--scenes 30] [--distinct 60]
                                                 [--sizes 10000,100000] [--threads 2]
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
from PIL import Image, ImageDraw, ImageEnhance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.decode import decode_photo  # noqa: E402
from indexer.errors import DecodeError  # noqa: E402
from indexer.library import open_library  # noqa: E402
from indexer.pipeline import index_paths  # noqa: E402
from models import load_encoder  # noqa: E402
from search.cleanup import find_duplicates  # noqa: E402
from search.duplicates import (  # noqa: E402
    STRICTNESS,
    complete_linkage_groups,
    hamming_many,
    similar_pairs,
    strictness,
)

TESTDATA = ROOT.parent / "shared" / "testdata" / "photos"
REAL = (
    "jpg/Canon_40D.jpg", "jpg/Nikon_D70.jpg", "jpg/Pentax_K10D.jpg", "jpg/Kodak_CX7530.jpg",
    "jpg/orientation/landscape_1.jpg", "jpg/orientation/portrait_1.jpg", "tiff/BSG1.tiff",
    "heic/IMG_5195.HEIC",
)
VARIANTS = ("half", "q60", "crop5", "bright", "png")


# ------------------------------------------------------------------ photos
def camera_exif(second: int = 0) -> bytes:
    """What a camera writes: make, model and the capture time (burst frames differ)."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS 40D"
    exif.get_ifd(0x8769)[0x9003] = f"2024:05:01 10:00:{second:02d}"
    return exif.tobytes()


def scene(seed: int, moved: bool = False, size=(800, 600)) -> Image.Image:
    """A generated 'photo': lit background, a few objects, sensor noise. `moved` shifts
    one object, as in the next frame of a burst."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, 3)
    tilt = rng.uniform(-0.15, 0.15, (3, 2))
    img = np.stack([base[c] + tilt[c, 0] * x + tilt[c, 1] * y for c in range(3)], -1)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for k in range(int(rng.integers(4, 8))):
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        rx, ry = rng.uniform(0.05, 0.2) * w, rng.uniform(0.05, 0.2) * h
        if moved and k == 0:
            cx += 0.12 * w
            cy += 0.05 * h
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        (draw.ellipse if k % 2 else draw.rectangle)(box, fill=colour)
    noisy = np.asarray(im, np.float32) + rng.normal(0, 4, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def save_variant(im: Image.Image, kind: str, dest: Path) -> Path:
    w, h = im.size
    if kind == "half":
        im.resize((w // 2, h // 2), Image.Resampling.LANCZOS).save(dest := dest.with_suffix(
            ".jpg"), quality=90)
    elif kind == "q60":
        im.save(dest := dest.with_suffix(".jpg"), quality=60)
    elif kind == "crop5":
        dx, dy = round(w * 0.025), round(h * 0.025)
        im.crop((dx, dy, w - dx, h - dy)).save(dest := dest.with_suffix(".jpg"), quality=90)
    elif kind == "bright":
        ImageEnhance.Brightness(im).enhance(1.1).save(dest := dest.with_suffix(".jpg"),
                                                      quality=90)
    elif kind == "png":
        im.save(dest := dest.with_suffix(".png"))
    else:
        raise ValueError(kind)
    return dest


def plant(folder: Path, scenes: int, distinct: int) -> tuple[list[set[str]], list[set[str]],
                                                               set[str]]:
    """Write the photo set. Returns (planted copy sets, burst pairs, originals)."""
    copies: list[set[str]] = []
    bursts: list[set[str]] = []
    originals: set[str] = set()
    folder.mkdir(parents=True)
    sources: list[tuple[str, Image.Image, Path | None]] = []
    for rel in REAL:
        path = TESTDATA / rel
        try:
            im = decode_photo(path, min_side=0).image
        except (DecodeError, FileNotFoundError):
            continue
        sources.append((Path(rel).stem, im, path))
    for i in range(scenes):
        sources.append((f"scene{i:03d}", scene(1000 + i), None))
    for name, im, path in sources:
        if path is not None and path.suffix.lower() in (".jpg", ".jpeg"):
            original = folder / path.name
            shutil.copyfile(path, original)  # the camera file itself, EXIF and all
        else:
            original = folder / f"{name}.jpg"
            im.save(original, quality=95, exif=camera_exif())
        members = {str(original)}
        for kind in VARIANTS:
            members.add(str(save_variant(im, kind, folder / f"{name}_{kind}")))
        copies.append(members)
        originals.add(str(original))
        if path is None:
            sibling = folder / f"{name}_burst.jpg"
            scene(1000 + int(name[5:]), moved=True).save(sibling, quality=95,
                                                         exif=camera_exif(second=1))
            bursts.append({str(original), str(sibling)})
    for i in range(distinct):
        scene(5000 + i).save(folder / f"distinct{i:03d}.jpg", quality=92)
    return copies, bursts, originals


def _pairs(sets) -> set[tuple[str, str]]:
    out = set()
    for members in sets:
        ordered = sorted(members)
        out.update((a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:])
    return out


def quality_table(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos" / "client"
        copies, bursts, originals = plant(photos, args.scenes, args.distinct)
        library = open_library(Path(tmp) / "library")
        encoder = load_encoder("tiny-test", cache_dir=Path(tmp) / "models")
        start = time.perf_counter()
        summary = index_paths(library, encoder, [photos.parent])
        took = time.perf_counter() - start
        print(f"indexed {summary.new} photos ({len(copies)} originals × {len(VARIANTS)} "
              f"copies, {len(bursts)} burst siblings, {args.distinct} distinct) in "
              f"{took:.0f} s with the tiny-test model")
        print("NOTE: tiny-test has no semantics (all cosines > 0.9), so here the perceptual "
              "hash does the work; with a real CLIP model the embedding check also applies.")
        truth = _pairs(copies)
        burst_pairs = _pairs(bursts)
        print()
        print(f"{'strictness':10s} {'groups':>6s} {'pair prec':>9s} {'pair recall':>11s} "
              f"{'sets exact':>10s} {'bursts joined':>13s} {'keeper=camera file':>18s}  seconds")
        for name in STRICTNESS:
            start = time.perf_counter()
            groups = find_duplicates(library, level=name)
            seconds = time.perf_counter() - start
            found = [{m.photo.path for m in g.members} for g in groups]
            pairs = _pairs(found)
            # Burst siblings are different photos: they count against precision only
            # at near/exact; at `similar` they are expected and left out of both counts.
            judged = pairs - burst_pairs if name == "similar" else pairs
            hits = len(judged & truth)
            precision = hits / len(judged) if judged else 1.0
            recall = len(pairs & truth) / len(truth)
            exact = sum(1 for s in copies if s in found) / len(copies)
            joined = len(pairs & burst_pairs)
            # Burst siblings are camera originals too: a keeper must be one of those.
            cameras = originals | {p for b in bursts for p in b}
            with_original = [g for g in groups if {m.photo.path for m in g.members} & cameras]
            keeper_ok = sum(
                1 for g in with_original
                if next(m.photo.path for m in g.members if m.keeper) in cameras
            )
            keeper = f"{keeper_ok}/{len(with_original)}" if with_original else "-"
            print(f"{name:10s} {len(groups):6d} {precision:9.3f} {recall:11.3f} "
                  f"{exact:10.3f} {joined:7d}/{len(burst_pairs):<5d} {keeper:>18s}  "
                  f"{seconds:.2f}")
        library.close()
        print("(exact finds no planted copies by design: every copy was re-encoded)")


# ------------------------------------------------------------------- speed
def synthetic(n: int, dim: int = 512, seed: int = 0):
    """Clustered vectors: a fifth of the photos sit in sets of 2-5 near copies (cosine
    ~0.97, hashes a few bits apart); the rest are unrelated."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    phashes = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
    i = 0
    while i < n // 5:
        size = int(rng.integers(2, 6))
        members = np.arange(i, min(i + size, n))
        vectors[members] = vectors[i] + 0.25 * rng.standard_normal((len(members), dim))
        flips = rng.integers(0, 2**5, len(members)).astype(np.int64)  # up to 5 low bits
        phashes[members] = phashes[i] ^ flips
        i += size
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    order = rng.permutation(n)
    return vectors[order], phashes[order]


def speed_table(args: argparse.Namespace) -> None:
    import faiss

    faiss.omp_set_num_threads(args.threads)
    level = strictness("near")
    print()
    print(f"all-pairs duplicate pass, 512-d vectors, {args.threads} thread(s), "
          f"strictness near (cosine ≥ {level.min_cosine}, hash ≤ {level.max_hamming} bits)")
    print(f"{'vectors':>8s} {'index':>6s} {'pass s':>7s} {'cpu s':>6s} {'pairs':>8s} "
          f"{'groups':>7s} {'flat s (baseline)':>18s} {'speed-up':>8s} {'pair recall':>11s}")
    for n in args.sizes:
        vectors, phashes = synthetic(n)
        # The pass `find_groups` runs for one scope, in its two steps.
        start, cpu_start = time.perf_counter(), time.process_time()
        pairs = similar_pairs(vectors, phashes, level)
        groups = complete_linkage_groups(pairs, list(range(n)), vectors, phashes)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        kind = "flat" if n <= 20_000 else "IVF"
        # Baseline: exhaustive flat range search, timed on a slice of queries.
        sample = min(n, 2000)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        start = time.perf_counter()
        lims, _, labels = index.range_search(vectors[:sample], level.min_cosine)
        flat = (time.perf_counter() - start) * n / sample
        rows = np.repeat(np.arange(sample), np.diff(lims).astype(np.int64))
        cols = labels.astype(np.int64)
        keep = (rows != cols) & (hamming_many(phashes[rows], phashes[cols]) <= level.max_hamming)
        truth = {(min(a, b), max(a, b)) for a, b in zip(rows[keep], cols[keep], strict=True)}
        got = {(int(a), int(b)) for a, b in pairs.tolist() if a < sample or b < sample}
        recall = len(truth & got) / len(truth) if truth else 1.0
        print(f"{n:8d} {kind:>6s} {seconds:7.1f} {cpu:6.1f} {len(pairs):8d} {len(groups):7d} "
              f"{flat:18.1f} {flat / seconds:7.1f}x {recall:11.4f}")
    print("(flat baseline = exhaustive range search timed on 2000 queries and scaled to all; "
          "pair recall checked against it for those 2000 photos; cpu s = processor time of "
          "the pass over all threads, a guide when other work shares the machine)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument("--distinct", type=int, default=60)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    if not args.skip_quality:
        quality_table(args)
    speed_table(args)


if __name__ == "__main__":
    main()
