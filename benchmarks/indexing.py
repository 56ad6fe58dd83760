"""Indexing throughput on 12-megapixel JPEGs: kezhao's pipeline against a naive loop and
against the model alone, for the default and the English presets' architectures.

    .venv/bin/python benchmarks/indexing.py                 # 48 photos per measurement
    .venv/bin/python benchmarks/indexing.py --photos 200 --repeats 3
    .venv/bin/python benchmarks/indexing.py --levers        # also sweep workers/threads/batch
    .venv/bin/python benchmarks/indexing.py --model-only --presets multilingual --levers
                                          # the encoder alone per mode, plus int8 variants

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
"ceiling" is what the whole pipeline could do if every core were busy all the time:
cores / (non-model core-seconds per photo + model core-seconds per photo), where the
non-model part is the pipeline's own per-photo preparation (hash, draft decode, EXIF,
quality, pHash, thumbnail, preprocessing: ``IndexRun._prepare``) timed in CPU seconds of
one thread, and the model part is model-only wall time x threads.
Ratios compare measurements taken in the same repeat, one right after the other.

int8 is the image tower quantised by ONNX Runtime (models/onnx_int8.py); its ONNX file is
built once per architecture into --work and reused by later runs.
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


def model_only(encoder, count: int, batch_size: int, encode=None) -> float:
    """Photos per second of the image tower alone on ready batches (``encode`` replaces
    ``encoder.encode_preprocessed`` for the lever variants)."""
    import torch

    encode = encode or encoder.encode_preprocessed
    batch = torch.randn(batch_size, 3, encoder.image_size, encoder.image_size)
    encode(batch)  # warm-up: first call initialises kernels (and ONNX Runtime's session)
    done = 0
    started = time.perf_counter()
    while done < count:
        encode(batch)
        done += batch_size
    return done / (time.perf_counter() - started)


def prepare_core_seconds(encoder, folder: Path, work: Path) -> float:
    """CPU seconds of one thread per photo for everything the pipeline does per photo
    besides the model: the content hash and ``IndexRun._prepare`` (draft decode, EXIF,
    quality, pHash, thumbnail, preprocessing), run one photo after another."""
    from indexer.library import open_library
    from indexer.pipeline import IndexRun, _Candidate, content_hash
    from indexer.scan import scan_root

    root = folder.resolve()
    library_dir = Path(tempfile.mkdtemp(prefix="library-", dir=work))
    try:
        with open_library(library_dir) as library:
            run = IndexRun(library, ImageOnly(encoder), client=None, progress=None,
                           batch_size=1, workers=1)
            root_id = library.catalog.add_root(str(root), None).id
            files = list(scan_root(root, skip=(library.root,)))
            started = time.thread_time()
            for file in files:
                prepared = run._prepare(root, root_id, _Candidate(file, None,
                                                                  content_hash(file.path)))
                if prepared.error is not None:
                    raise SystemExit(f"{file.path}: {prepared.error}")
            return (time.thread_time() - started) / len(files)
    finally:
        shutil.rmtree(library_dir, ignore_errors=True)


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
                        help="also measure decode modes and worker/thread/batch settings "
                             "(with --model-only: int8 quantisation variants instead)")
    parser.add_argument("--model-only", action="store_true",
                        help="measure the image tower alone per mode (quick lever sweeps)")
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
        if args.model_only:
            _model_only_table(fp32, encoders, paths, args, batch)
        else:
            _pipeline_table(fp32, encoders, paths, folder, args, options)
            if args.levers:
                _levers(fp32, encoders, paths, folder, args, options)
        args.levers = False  # the image tower is shared: sweep once
    return 0


def _pipeline_table(fp32, encoders, paths, folder, args, options) -> None:
    import torch

    batch = options["batch_size"]
    cores = os.cpu_count() or 1
    model_threads = options["model_threads"] or torch.get_num_threads()
    rows: dict[str, dict[str, list[float]]] = {m: {} for m in args.modes}
    naive_runs, prepare_runs, vectors = [], [], {}
    for _ in range(args.repeats):
        naive = naive_loop(fp32, paths)
        naive_runs.append(naive)
        prepare = prepare_core_seconds(fp32, folder, args.work)
        prepare_runs.append(prepare)
        for mode in args.modes:
            limit = model_only(encoders[mode], args.photos, batch)
            rate, vectors[mode] = kezhao_pipeline(
                encoders[mode], folder, len(paths), args.work, **options
            )
            ceiling = cores / (prepare + model_threads / limit)
            for key, value in (("rate", rate), ("limit", limit), ("ceiling", ceiling),
                               ("model_ms", 1000 * model_threads / limit),
                               ("x_naive", rate / naive), ("x_limit", rate / limit),
                               ("x_ceiling", rate / ceiling)):
                rows[mode].setdefault(key, []).append(value)
    med = statistics.median
    print(f"naive loop (full decode, open_clip preprocess, fp32, one by one): "
          f"{med(naive_runs):.1f} photos/s (repeats: "
          f"{', '.join(f'{n:.1f}' for n in naive_runs)})")
    for mode in args.modes:
        spread = ", ".join(f"{x:.2f}x" for x in rows[mode]["x_naive"])
        print(f"kezhao / naive per repeat, {mode}: {spread}")
    print(f"non-model work per photo (hash + IndexRun._prepare, one thread): "
          f"{1000 * med(prepare_runs):.1f} core-ms; {cores} cores, model on "
          f"{model_threads} threads")
    print("| mode | kezhao photos/s | model-only photos/s | kezhao / naive | "
          "kezhao / model-only | model core-ms / photo | ceiling photos/s | "
          "kezhao / ceiling | min cosine to fp32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in args.modes:
        r = {k: med(v) for k, v in rows[mode].items()}
        cosine = _min_cosine(vectors.get("fp32"), vectors[mode])
        print(f"| {mode} | {r['rate']:.1f} | {r['limit']:.1f} | {r['x_naive']:.2f}x | "
              f"{r['x_limit']:.0%} | {r['model_ms']:.1f} | {r['ceiling']:.1f} | "
              f"{r['x_ceiling']:.0%} | {cosine} |")
    first, later = tag_hook_seconds(encoders[args.modes[0]], folder, args.work)
    print(f"tag-suggestion hook ({args.modes[0]}), not in the rates above: "
          f"{first:.1f} s on a library's first run (encodes the tag vocabulary), "
          f"{later:.2f} s for {len(paths)} photos afterwards\n")


def _model_only_table(fp32, encoders, paths, args, batch: int) -> None:
    """The image tower alone: photos/s at ``batch`` (median of repeats, interleaved),
    cosine to fp32 on the real-content photos, and how much a photo's vector moves when
    it is encoded alone instead of inside its batch."""
    import torch

    pixels = torch.stack([fp32.preprocess(image) for image in _decoded(paths, fp32)])
    runners = {mode: encoders[mode].encode_preprocessed for mode in args.modes}
    if args.levers:
        runners.update(_int8_levers(fp32, args.work))
    reference = _batched(fp32.encode_preprocessed, pixels, batch)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, encode in runners.items():
            rates[name].append(model_only(fp32, args.photos, batch, encode))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"| variant | model-only photos/s (batch {batch}) | runs | min (mean) cosine to "
          "fp32 | min cosine, alone vs in its batch |")
    print("|---|---|---|---|---|")
    for name, encode in runners.items():
        vectors = _batched(encode, pixels, batch)
        cosines = np.sum(reference * vectors, axis=1)
        alone = np.concatenate([encode(pixels[i : i + 1]) for i in range(8)])
        moved = np.sum(alone * vectors[:8], axis=1)
        runs = ", ".join(f"{r:.1f}" for r in rates[name])
        print(f"| {name} | {statistics.median(rates[name]):.1f} | {runs} | "
              f"{cosines.min():.5f} ({cosines.mean():.5f}) | {moved.min():.5f} |")
    print()


def _decoded(paths: list[Path], encoder) -> list:
    """The photos as the pipeline decodes them for the model (draft, >= 384 px)."""
    from indexer.decode import decode_photo

    return [decode_photo(p, min_side=max(encoder.image_size, 384)).image for p in paths]


def _batched(encode, pixels, batch: int) -> np.ndarray:
    return np.concatenate([encode(pixels[i : i + batch]) for i in range(0, len(pixels), batch)])


def _int8_levers(fp32, work: Path) -> dict:
    """Other ways to get an int8 image tower, to show what the defaults won against."""
    import copy
    import dataclasses
    import warnings

    import torch

    from models import onnx_int8

    def normalised(features) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32)
        return features / np.linalg.norm(features, axis=1, keepdims=True)

    def ort(tower):
        return lambda batch: normalised(tower(batch.numpy()))

    visual = fp32._model.visual
    folder = work / "int8-levers" / onnx_int8.weights_digest(visual)[:12]
    folder.mkdir(parents=True, exist_ok=True)
    default = onnx_int8.DEFAULT_OPTIONS
    variants = {
        "int8, per-tensor weight scales": dataclasses.replace(default, per_channel=False),
        "int8, u8 weights": dataclasses.replace(default, weight_type="QUInt8"),
        "int8, reduce_range": dataclasses.replace(default, reduce_range=True),
        "int8, fused attention left fp32": dataclasses.replace(default,
                                                               op_types=("MatMul", "Gemm")),
    }
    runners = {}
    for label, options in variants.items():
        path = folder / f"{label.split(', ')[1].replace(' ', '-')}.onnx"
        if not path.exists():
            onnx_int8.build_int8_file(visual, path, options)
        runners[label] = ort(onnx_int8.Int8ImageTower(path))
    # As torch exports it: nn.MultiheadAttention's generic graph and a quantised Conv.
    plain = folder / "as-exported.onnx"
    if not plain.exists():
        exported = folder / "as-exported-fp32.onnx"
        example = torch.zeros(1, 3, fp32.image_size, fp32.image_size)
        with onnx_int8._no_fused_attention(), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(copy.deepcopy(visual).float(), (example,), str(exported),
                              dynamo=False, opset_version=onnx_int8.OPSET,
                              input_names=["pixels"], output_names=["features"],
                              dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}})
        onnx_int8.quantise(exported, plain, dataclasses.replace(
            default, per_channel=False, op_types=("MatMul", "Gemm", "Conv")))
    runners["int8, torch's own export (MHA + Conv)"] = ort(onnx_int8.Int8ImageTower(plain))
    tower = onnx_int8.load_image_tower(visual, cache_dir=work, model_id=fp32.model_id)
    runners["int8, one photo per call"] = lambda batch: np.concatenate(
        [normalised(tower(batch[i : i + 1].numpy())) for i in range(len(batch))]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's eager API is deprecated
        ao = torch.ao.quantization.quantize_dynamic(copy.deepcopy(visual).float().eval(),
                                                    {torch.nn.Linear}, dtype=torch.qint8)

    def torch_ao(batch) -> np.ndarray:
        with torch.inference_mode():
            return normalised(ao(batch).numpy())

    runners["int8-torch (torch.ao, Linear layers only)"] = torch_ao
    return runners


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
