"""How fast do suggestions get better when a person reviews them?

Simulates a reviewer over a labelled set of photos (``<folder>/<tag>/*.jpg``): each round,
for every tag, the reviewer looks at the top suggestions among the review photos (pending
suggestions first, then the next best-ranked unreviewed photos), accepts the right ones and
rejects the wrong ones; the tagger then retrains. Precision@k is measured on *held-out*
photos the reviewer never sees. Round 0 is the zero-shot prior alone.

    .venv/bin/python benchmarks/tag_learning.py                       # synthetic, tiny model
    .venv/bin/python benchmarks/tag_learning.py --folder ~/labelled --model multilingual

Without --folder it draws synthetic visual classes (coloured shapes, stripes, checkerboards)
that even the tiny random test model separates. The tiny model has NO semantics: its round-0
(zero-shot) numbers are chance level by construction, and only the learning rounds mean
something. With a real model and a real folder the same script measures both.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer.catalog import PhotoFilter  # noqa: E402
from indexer.library import default_library_dir, open_library  # noqa: E402
from indexer.pipeline import index_paths  # noqa: E402
from indexer.tagging import TagService  # noqa: E402
from models.tagging import DEFAULT_THRESHOLD, precision_at_k  # noqa: E402
from models.vocabulary import TagDefinition, Vocabulary, load_vocabulary  # noqa: E402

SYNTHETIC_CLASSES = ("red_disc", "blue_square", "stripes", "checkerboard", "green_field",
                     "yellow_triangle")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif"}


# ----------------------------------------------------------- synthetic data
def synthetic_image(name: str, rng: np.random.Generator, size=(160, 120)) -> Image.Image:
    """One photo of a synthetic class on a random noisy background."""
    w, h = size
    base = rng.integers(70, 190, 3)
    pixels = np.clip(base + rng.normal(0, 18, (h, w, 3)), 0, 255).astype(np.uint8)
    if name == "green_field":
        pixels = np.clip(np.array([40, 160, 60]) + rng.normal(0, 25, (h, w, 3)), 0, 255)
        pixels = pixels.astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(22, 45))
    cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, h - r))
    if name == "red_disc":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(220, 30, 30))
    elif name == "blue_square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=(30, 40, 220))
    elif name == "yellow_triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=(230, 210, 20))
    elif name == "stripes":
        period = int(rng.integers(8, 16))
        for x in range(0, w, period):
            draw.rectangle([x, 0, x + period // 2, h], fill=(20, 20, 20))
    elif name == "checkerboard":
        period = int(rng.integers(10, 20))
        for x in range(0, w, period):
            for y in range(0, h, period):
                if (x // period + y // period) % 2:
                    draw.rectangle([x, y, x + period - 1, y + period - 1], fill=(240, 240, 240))
    return image


def make_synthetic_classes(
    dest: Path, per_class: int = 40, seed: int = 0, classes=SYNTHETIC_CLASSES
) -> Path:
    """Write ``dest/<class>/<n>.jpg`` and return dest."""
    rng = np.random.default_rng(seed)
    for name in classes:
        folder = Path(dest) / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            synthetic_image(name, rng).save(folder / f"{name}_{i:03d}.jpg", quality=90)
    return Path(dest)


# ---------------------------------------------------------------- benchmark
@dataclass(frozen=True)
class RoundResult:
    round: int
    reviewed: int
    accepted: int
    precision: float  # mean precision@k on held-out photos over tags
    per_tag: dict[str, float]
    suggested_precision: float  # held-out photos above the threshold: share that are right
    suggested_recall: float  # held-out photos of a tag that are above its threshold


def labelled_files(folder: Path) -> dict[str, list[Path]]:
    classes = {}
    for sub in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        files = sorted(f for f in sub.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            classes[sub.name] = files
    if len(classes) < 2:
        raise SystemExit(f"{folder}: need at least two <tag>/ folders with photos")
    return classes


def benchmark_vocabulary(tag_names: list[str]) -> Vocabulary:
    """The folder names as tags: a built-in tag when the name is one of its key or labels
    (so a real model gets the shipped prompts), else one generated prompt."""
    builtin = load_vocabulary()
    tags = []
    for name in tag_names:
        known = next((t for t in builtin.tags if name in (t.key, t.label_zh, t.label_en)), None)
        if known is not None:
            tags.append(TagDefinition(name, known.label_zh, known.label_en, known.prompts))
        else:
            words = name.replace("_", " ").replace("-", " ")
            tags.append(TagDefinition(name, words, words, (f"a photo of a {words}",)))
    return Vocabulary(version=1, tags=tuple(tags))


def run_benchmark(
    folder: Path, encoder, library_dir: Path, *, rounds: int = 4, k: int = 10,
    review_k: int = 8, holdout: float = 0.4, seed: int = 0,
) -> list[RoundResult]:
    classes = labelled_files(folder)
    library = open_library(library_dir)
    try:
        index_paths(library, encoder, [Path(folder)], workers=2)
        label_of: dict[int, str] = {}
        for name, files in classes.items():
            for f in files:
                photo_id = library.catalog.photo_id_for_path(str(f.resolve()))
                if photo_id is not None:
                    label_of[photo_id] = name
        rng = np.random.default_rng(seed)
        ids = np.array(sorted(label_of))
        held = set(rng.permutation(ids)[: int(len(ids) * holdout)].tolist())
        pool = [int(i) for i in ids if int(i) not in held]
        held_ids = sorted(held)
        service = TagService(library, lambda: encoder, vocabulary=benchmark_vocabulary(
            list(classes)))
        service.refresh()
        reviewed: dict[str, set[int]] = {name: set() for name in classes}
        results = [_measure(service, 0, classes, held_ids, label_of, k, reviewed)]
        for r in range(1, rounds + 1):
            for name in classes:
                batch = _next_to_review(service, name, pool, reviewed[name], review_k)
                yes = [i for i in batch if label_of[i] == name]
                no = [i for i in batch if label_of[i] != name]
                if yes:
                    service.accept(yes, name, learn=False)
                if no:
                    service.reject(no, name, learn=False)
                reviewed[name].update(batch)
            service.learn(list(classes))
            results.append(_measure(service, r, classes, held_ids, label_of, k, reviewed))
        return results
    finally:
        library.close()


def _next_to_review(service: TagService, tag: str, pool: list[int], seen: set[int],
                    n: int) -> list[int]:
    pending = service.pending(PhotoFilter(photo_ids=tuple(pool)), tag=tag, limit=n)
    batch = [s.photo_id for s in pending if s.photo_id not in seen][:n]
    if len(batch) < n:
        for photo_id, _p in service.rank(tag, pool):
            if photo_id not in seen and photo_id not in batch:
                batch.append(photo_id)
                if len(batch) == n:
                    break
    return batch


def _measure(service, r, classes, held_ids, label_of, k, reviewed) -> RoundResult:
    per_tag = {}
    hits = suggested = positives = 0
    for name in classes:
        ranked = service.rank(name, held_ids)
        scores = np.array([p for _, p in ranked])
        labels = np.array([label_of[i] == name for i, _ in ranked])
        per_tag[name] = precision_at_k(scores, labels, k)
        above = scores >= DEFAULT_THRESHOLD
        hits, suggested = hits + int(labels[above].sum()), suggested + int(above.sum())
        positives += int(labels.sum())
    accepted = sum(1 for name, seen in reviewed.items() for i in seen if label_of[i] == name)
    return RoundResult(r, sum(len(s) for s in reviewed.values()), accepted,
                       float(np.mean(list(per_tag.values()))), per_tag,
                       hits / suggested if suggested else 0.0, hits / max(1, positives))


def print_table(results: list[RoundResult], k: int, chance: float) -> None:
    base = results[0].precision
    print(f"{'round':>5}  {'reviewed':>8}  {'accepted':>8}  {f'P@{k} held-out':>14}  "
          f"{'vs round 0':>10}  {'suggested: precision':>20}  {'recall':>6}")
    for res in results:
        ratio = f"{res.precision / base:.2f}x" if base > 0 else "-"
        print(f"{res.round:>5}  {res.reviewed:>8}  {res.accepted:>8}  {res.precision:>14.3f}  "
              f"{ratio:>10}  {res.suggested_precision:>20.3f}  {res.suggested_recall:>6.3f}")
    print(f"chance level (share of a tag's photos): {chance:.3f}")
    last = results[-1]
    print("per tag, last round: " + ", ".join(f"{t} {p:.2f}" for t, p in last.per_tag.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, help="labelled photos: <dir>/<tag>/*.jpg "
                        "(default: synthetic classes)")
    parser.add_argument("--model", default="tiny-test", help="model preset (default tiny-test)")
    parser.add_argument("--checkpoint", type=Path, help="local open_clip checkpoint")
    parser.add_argument("--models-dir", type=Path, default=default_library_dir() / "models",
                        help="where model weights are cached (default: the default library's)")
    parser.add_argument("--per-class", type=int, default=40, help="synthetic photos per class")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--k", type=int, default=10, help="precision@k on held-out photos")
    parser.add_argument("--review-k", type=int, default=8, help="photos reviewed per tag "
                        "and round")
    parser.add_argument("--holdout", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from models import load_encoder

    encoder = load_encoder(args.model, cache_dir=args.models_dir, checkpoint=args.checkpoint)
    if encoder.is_test and args.checkpoint is None:
        print("note: tiny-test model — random weights with NO semantics; round 0 (zero-shot) "
              "is chance level by construction, only the learning rounds are meaningful.")
    with tempfile.TemporaryDirectory(prefix="kezhao-tag-bench-") as tmp:
        folder = args.folder or make_synthetic_classes(Path(tmp) / "photos", args.per_class,
                                                       args.seed)
        classes = labelled_files(folder)
        chance = float(np.mean([len(f) for f in classes.values()]) /
                       sum(len(f) for f in classes.values()))
        started = time.perf_counter()
        results = run_benchmark(folder, encoder, Path(tmp) / "library", rounds=args.rounds,
                                k=args.k, review_k=args.review_k, holdout=args.holdout,
                                seed=args.seed)
        print(f"{len(classes)} tags, {sum(len(f) for f in classes.values())} photos, "
              f"model {encoder.model_id}, {time.perf_counter() - started:.1f}s")
        print_table(results, args.k, chance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
