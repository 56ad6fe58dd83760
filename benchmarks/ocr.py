"""Benchmark: reading text in photos (speed, character accuracy, text-search recall).

Builds a labelled set in a temporary folder: real photos from ../shared/testdata and
generated scenes, resized to common camera sizes, with Chinese and English phrases
rendered at several sizes, colours and slight rotations (Noto Sans CJK), plus photos with
no text at all. Indexes them (tiny CLIP model: only the catalog rows matter), runs the real
OCR pass and prints:

* OCR photos/s on ``--threads`` cores, photos with and without text separately, next to
  decoding alone at the OCR size (the baseline every pass pays, measured in the same run);
* character accuracy of the rendered phrase (1 - character error rate, spaces ignored,
  against the best-matching line read from the photo);
* recall@1 and recall@5 of text search (`HybridSearch(..., text_only=True)`; the CLIP side
  is left out because the offline tiny test model has no semantics) for each full phrase
  and for 2-, 3- and 4-character Chinese substrings of it.

Usage: .venv/bin/python benchmarks/ocr.py [--text N] [--plain N] [--threads 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.decode import decode_photo  # noqa: E402
from indexer.library import open_library  # noqa: E402
from indexer.ocr import OCR_MAX_SIDE, OCR_MIN_SIDE, read_text, working_image  # noqa: E402
from indexer.pipeline import index_paths  # noqa: E402
from models import load_encoder  # noqa: E402
from models.ocr import load_ocr_engine  # noqa: E402
from search.hybrid import HybridSearch  # noqa: E402
from search.query import SearchService  # noqa: E402

TESTDATA = ROOT.parent / "shared" / "testdata" / "photos"
FONT_DIRS = (Path("/usr/share/fonts/opentype/noto"), Path("/usr/share/fonts/truetype/noto"))

PHRASES = (
    "客户拜访 ACME", "新品发布会 2024", "华东区销售年会", "欢迎光临", "合同签署仪式",
    "数字化转型论坛", "售后服务中心", "李四装饰设计", "年度总结大会", "王记茶庄",
    "智能制造展 B12", "恒源科技有限公司", "张三 产品经理", "春季订货会", "安全生产月",
    "Product Launch 2024", "ACME Robotics", "Smart Factory Expo", "Model X-200",
    "Welcome Dr. Chen", "Customer Visit", "Booth A17", "Spring Sale 30% OFF",
    "绿源农业合作社", "质量第一 客户至上", "北京国际车展", "会议室 3F", "东方物流",
    "培训中心", "Annual Meeting",
)
# (text colour, panel colour or None for text straight on the photo)
STYLES = (
    ((20, 20, 20), (250, 250, 245)),
    ((255, 255, 255), (180, 20, 30)),
    ((200, 20, 20), (255, 220, 60)),
    ((255, 255, 255), (20, 60, 140)),
    ((250, 250, 250), None),
    ((15, 15, 15), None),
    ((120, 120, 125), (215, 215, 210)),  # low contrast: grey print on a grey panel
)
SIZES = ((1600, 1200), (1600, 1200), (1200, 1600), (2000, 1500), (4000, 3000))
TEXT_HEIGHTS = (0.01, 0.015, 0.025, 0.04, 0.07)  # glyph size as a share of short side


@dataclass(frozen=True)
class Sample:
    path: Path
    phrase: str | None
    base: str
    detail: str


def cjk_font_path() -> Path:
    for folder in FONT_DIRS:
        for path in sorted(folder.glob("NotoSansCJK-Regular.tt*")):
            return path
    raise SystemExit("needs a CJK font: apt-get install fonts-noto-cjk")


def real_bases() -> tuple[list[Path], list[Path]]:
    """(bases for text photos, real photos without text). The orientation set shows
    printed labels, so it only serves as a background for rendered text."""
    labelled = sorted((TESTDATA / "jpg" / "orientation").glob("*.jpg"))
    clean = sorted((TESTDATA / "jpg").glob("*.jpg")) + [TESTDATA / "tiff" / "BSG1.tiff"]
    heic = TESTDATA / "heic" / "IMG_5195.HEIC"
    return labelled + clean, clean + ([heic] if heic.exists() else [])


def open_base(path: Path) -> Image.Image:
    return decode_photo(path, min_side=0).image


def generated_scene(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """Gradient 'room' with boxes and discs in it, noise and a little blur."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c = [rng.uniform(40, 200) for _ in range(6)]
    img = np.stack([c[i] + (c[i + 3] - c[i]) * (y / h) + 20 * np.sin(x / w * rng.uniform(1, 6))
                    for i in range(3)], axis=-1)
    scene = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(scene)
    for _ in range(rng.randint(4, 10)):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        x1, y1 = x0 + rng.uniform(0.05, 0.4) * w, y0 + rng.uniform(0.05, 0.4) * h
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        (draw.rectangle if rng.random() < 0.6 else draw.ellipse)((x0, y0, x1, y1), fill=colour)
    noise = np.random.default_rng(rng.randint(0, 10**6)).normal(0, 6, (h, w, 3))
    noisy = np.clip(np.asarray(scene, np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(noisy).filter(ImageFilter.GaussianBlur(0.8))


def render_phrase(image: Image.Image, phrase: str, rng: random.Random,
                  font_path: Path) -> tuple[Image.Image, str]:
    """Paste ``phrase`` (on a panel or straight on the photo), slightly rotated."""
    share = rng.choice(TEXT_HEIGHTS)
    font = ImageFont.truetype(str(font_path), max(12, int(min(image.size) * share)), index=2)
    fill, panel = rng.choice(STYLES)
    probe = ImageDraw.Draw(image)
    left, top, right, bottom = probe.textbbox((0, 0), phrase, font=font)
    pad = int((bottom - top) * 0.4)
    layer = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if panel is not None:
        draw.rectangle((0, 0, layer.width, layer.height), fill=(*panel, 255))
    else:  # a soft shadow keeps bare text legible, as on real signage photos
        draw.text((pad - left + 2, pad - top + 2), phrase, font=font, fill=(0, 0, 0, 110)
                  if sum(fill) > 380 else (255, 255, 255, 110))
    draw.text((pad - left, pad - top), phrase, font=font, fill=(*fill, 255))
    angle = rng.uniform(-10, 10)
    layer = layer.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    out = image.convert("RGB").copy()
    if layer.width >= out.width:
        layer = layer.resize((out.width - 8, max(1, layer.height * (out.width - 8)
                                                 // layer.width)))
    x = rng.randint(0, out.width - layer.width)
    y = rng.randint(0, max(0, out.height - layer.height))
    out.paste(layer, (x, y), layer)
    detail = (f"{share:.0%} height, {'panel' if panel else 'bare'}, "
              f"rot {angle:+.1f}°")
    return out, detail


def build_set(folder: Path, n_text: int, n_plain: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    font_path = cjk_font_path()
    text_bases, plain_bases = real_bases()
    samples: list[Sample] = []
    for i in range(n_text):
        size = SIZES[i % len(SIZES)]
        if i % 3 == 2:
            base, base_name = generated_scene(rng, size), "generated"
        else:
            src = text_bases[i % len(text_bases)]
            base, base_name = open_base(src).resize(size, Image.Resampling.BICUBIC), src.name
        phrase = PHRASES[i % len(PHRASES)]
        image, detail = render_phrase(base, phrase, rng, font_path)
        path = folder / "with_text" / f"t{i:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=rng.choice((75, 85, 92)))
        samples.append(Sample(path, phrase, base_name, f"{size[0]}x{size[1]}, {detail}"))
    for i in range(n_plain):
        size = SIZES[i % len(SIZES)]
        if i % 2 == 1:
            base, base_name = generated_scene(rng, size), "generated"
        else:
            src = plain_bases[(i // 2) % len(plain_bases)]
            base, base_name = open_base(src).resize(size, Image.Resampling.BICUBIC), src.name
        path = folder / "no_text" / f"p{i:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        base.convert("RGB").save(path, quality=90)
        samples.append(Sample(path, None, base_name, f"{size[0]}x{size[1]}"))
    return samples


class StampProgress:
    """Records when each photo of the pass is done (the pass reads in catalog order)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.cpu: list[float] = []

    def start(self, total: int) -> None:
        self.stamps, self.cpu = [time.perf_counter()], [time.process_time()]

    def advance(self, n: int = 1) -> None:
        self.stamps.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def finish(self) -> None:
        pass


class CountingEngine:
    def __init__(self, inner) -> None:
        self.inner, self.model_version = inner, inner.model_version
        self.detected = self.recognised = 0

    def detect(self, image):
        self.detected += 1
        return self.inner.detect(image)

    def recognise(self, regions):
        self.recognised += 1
        return self.inner.recognise(regions)


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def char_accuracy(expected: str, lines: list[str]) -> float:
    """1 - CER against the best line (or, for phrases split over lines, all lines)."""
    want = "".join(expected.split())
    candidates = ["".join(line.split()) for line in lines] + ["".join("".join(lines).split())]
    best = min((edit_distance(want, got) for got in candidates), default=len(want))
    return max(0.0, 1.0 - best / len(want))


def chinese_substrings(phrase: str, length: int, rng: random.Random) -> list[str]:
    runs = [run for run in phrase.split() if all("\u4e00" <= ch <= "\u9fff" for ch in run)]
    spans = [run[i:i + length] for run in runs for i in range(len(run) - length + 1)]
    return [rng.choice(spans)] if spans else []


def recall_at(search: HybridSearch, queries: list[tuple[str, int]], k: int = 5) -> float:
    if not queries:
        return float("nan")
    found = 0
    for query, photo_id in queries:
        hits = search.search(query, k=k, text_only=True)
        found += photo_id in [h.photo.id for h in hits]
    return found / len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", type=int, default=30, help="photos with rendered text")
    parser.add_argument("--plain", type=int, default=15, help="photos without text")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-side", type=int, default=OCR_MAX_SIDE,
                        help="long side of the OCR working image")
    parser.add_argument("--keep", help="build the set in this folder and keep it")
    args = parser.parse_args()

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kezhao-ocr-"))
    t0 = time.perf_counter()
    samples = build_set(folder / "photos", args.text, args.plain, args.seed)
    print(f"built {len(samples)} photos in {time.perf_counter() - t0:.1f}s under {folder}")

    library = open_library(folder / "library")
    encoder = load_encoder("tiny-test", cache_dir=folder / "models")
    index_paths(library, encoder, [folder / "photos"])
    by_path = {str(s.path): s for s in samples}
    engine = CountingEngine(load_ocr_engine(threads=args.threads))
    order = [t.path for t in library.catalog.photos_needing_ocr(engine.model_version)]

    # Baseline in the same run: decoding at the OCR size, which any pass has to do.
    decode_times = {}
    for path in order:
        start = time.perf_counter()
        working_image(decode_photo(Path(path), min_side=OCR_MIN_SIDE).image, args.max_side)
        decode_times[path] = time.perf_counter() - start

    progress = StampProgress()
    start = time.perf_counter()
    summary = read_text(library, engine, progress=progress, max_side=args.max_side)
    wall = time.perf_counter() - start
    per_photo = dict(zip(order, np.diff(progress.stamps), strict=True))
    per_photo_cpu = dict(zip(order, np.diff(progress.cpu), strict=True))

    rows = []
    for label, has_text in (("with text", True), ("without text", False)):
        paths = [p for p in order if (by_path[p].phrase is not None) == has_text]
        ocr_s = sum(per_photo[p] for p in paths)
        cpu_s = sum(per_photo_cpu[p] for p in paths)
        dec_s = sum(decode_times[p] for p in paths)
        rows.append((label, len(paths), len(paths) / ocr_s, cpu_s / len(paths),
                     len(paths) / dec_s, ocr_s / dec_s))

    catalog = library.catalog
    accuracies, detected_only, false_text = [], 0, 0
    rng = random.Random(args.seed + 1)
    queries: dict[str, list[tuple[str, int]]] = {"full phrase": [], "2 chars": [],
                                                   "3 chars": [], "4 chars": []}
    for path in order:
        sample = by_path[path]
        photo_id = catalog.photo_id_for_path(path)
        read = catalog.ocr_read(photo_id)
        lines = [line.text for line in read.lines]
        if sample.phrase is None:
            false_text += read.state == "text"
            detected_only += read.state == "no_text"
            continue
        accuracies.append(char_accuracy(sample.phrase, lines))
        queries["full phrase"].append((sample.phrase, photo_id))
        for n in (2, 3, 4):
            queries[f"{n} chars"] += [(q, photo_id) for q in chinese_substrings(
                sample.phrase, n, rng)]

    search = HybridSearch(SearchService(library, None))
    print()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; onnxruntime threads {args.threads}; "
          f"working image ≤{args.max_side}px; {engine.model_version}")
    print(f"pass: {len(order)} photos in {wall:.1f}s ({len(order) / wall:.2f} photos/s "
          f"end to end); recognition ran on {engine.recognised} of {engine.detected} photos")
    print()
    print(f"{'photos':14s} {'n':>3s} {'OCR photos/s':>13s} {'CPU s/photo':>12s} "
          f"{'decode only/s':>14s} {'OCR / decode time':>18s}")
    for label, n, ocr_rate, cpu, dec_rate, ratio in rows:
        print(f"{label:14s} {n:3d} {ocr_rate:13.2f} {cpu:12.2f} {dec_rate:14.1f} "
              f"{ratio:17.1f}x")
    print()
    print(f"character accuracy (rendered phrase, {len(accuracies)} photos): "
          f"mean {np.mean(accuracies):.3f}, exact {np.mean([a == 1 for a in accuracies]):.2f}")
    print(f"photos without text read as text: {false_text} of {args.plain}; "
          f"read as no text: {detected_only}")
    print()
    print(f"{'text search':14s} {'queries':>8s} {'recall@1':>9s} {'recall@5':>9s}")
    for label, qs in queries.items():
        print(f"{label:14s} {len(qs):8d} {recall_at(search, qs, 1):9.2f} "
              f"{recall_at(search, qs, 5):9.2f}")
    misses = [(by_path[p].phrase, by_path[p].detail, [line.text for line in
               catalog.ocr_read(catalog.photo_id_for_path(p)).lines])
              for p in order if by_path[p].phrase and char_accuracy(
                  by_path[p].phrase, [line.text for line in catalog.ocr_read(
                      catalog.photo_id_for_path(p)).lines]) < 1]
    if misses:
        print()
        print("imperfect reads (expected | rendering | read):")
        for phrase, detail, lines in misses:
            print(f"  {phrase} | {detail} | {json.dumps(lines, ensure_ascii=False)}")
    print(f"\nsummary: {json.dumps(summary.as_dict()['failures'])} failures")
    library.close()


if __name__ == "__main__":
    main()
