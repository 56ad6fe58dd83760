"""Query latency and memory of the search service at 10k, 100k (and 1M) photos.

    .venv/bin/python benchmarks/query_latency.py                       # 10k and 100k
    .venv/bin/python benchmarks/query_latency.py --sizes 1000000       # the 1M library
    .venv/bin/python benchmarks/query_latency.py --sizes 100000 --levers

Each size gets a real library: catalog rows (clients: one holding 1% of the photos, one
holding 30%, the rest spread over 50 others) with synthetic embeddings shaped like a photo
library's CLIP vectors (a shared cone, topics, bursts of similar shots; see _synthetic.py).
Queries go through ``SearchService`` end to end: filter -> allowed ids from the catalog ->
FAISS -> photo rows. "text" runs the default preset's text tower (XLM-R base architecture,
random weights, stand-in tokenizer — no download) on a new query string every time, so
the query cache never helps; because a random tower's output says nothing about the
synthetic photos, the search then uses a text-like vector from the same synthetic world
(it matches a scene weakly, as real text queries do). "similar" is more-like-this for an
indexed photo. Recall@10 compares each answer with exact brute force over the same
allowed photos. One query at a time; p50/p95 over --queries queries.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import VectorWorld  # noqa: E402

SMALL, LARGE = "客户-1%", "客户-30%"
WORDS = ["product", "demo", "booth", "meeting", "展台", "产品", "演示", "会议", "合影", "签约",
         "office", "team", "客户", "门店", "活动", "wedding", "outdoor", "night", "年会"]


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class SyntheticTextEncoder:
    """The default preset's text tower doing its real work, answering with a synthetic
    text-like vector so that search difficulty is realistic."""

    def __init__(self, text_encoder, queries: np.ndarray, model_id: str) -> None:
        self.inner = text_encoder
        self.queries = queries
        self.model_id = model_id
        self.image_size = 224
        self.next = 0

    def encode_texts(self, texts):
        self.inner.encode_texts(list(texts))  # the real cost, result unused
        out = self.queries[self.next % len(self.queries)][None]
        self.next += 1
        return out

    def encode_images(self, images):
        raise AssertionError("not used")


def client_of(i: int, n: int) -> str:
    share = i / n
    if share < 0.01:
        return SMALL
    if share < 0.31:
        return LARGE
    return f"客户{i % 50:02d}"


def build_library(root: Path, world: VectorWorld, n: int):
    """A library with n photos; returns it with ids and vectors in row order."""
    from indexer.catalog import PhotoRecord
    from indexer.library import open_library

    library = open_library(root)
    rng = np.random.default_rng(3)
    order = rng.permutation(n)  # clients' photos spread over the whole id range
    ids, blocks = [], []
    row = 0
    for vectors in world.photos(n):
        rows = []
        for vector in vectors:
            i = int(order[row])
            rows.append((PhotoRecord(path=f"/photos/{i}.jpg", root_id=None, size=1, mtime_ns=1,
                                     content_hash=f"h{i}", client=client_of(i, n)), vector))
            row += 1
        for start in range(0, len(rows), 5000):
            ids.extend(library.catalog.save_photos(rows[start:start + 5000], "benchmark"))
        blocks.append(vectors)
    library.catalog.bump_vectors_generation()
    return library, np.asarray(ids, dtype=np.int64), np.vstack(blocks)


def exact_top(vectors, query, k, mask=None, exclude_row=None):
    """Row numbers of the exact top k (over ``mask``'s rows, without ``exclude_row``)."""
    scores = vectors @ query
    if mask is not None:
        scores[~mask] = -np.inf
    if exclude_row is not None:
        scores[exclude_row] = -np.inf
    top = np.argpartition(-scores, k)[:k]
    return [int(r) for r in top if np.isfinite(scores[r])]


def measure(service, kind, flt, queries, vectors, ids, rng, k=10):
    """Latencies (ms) and recall@10 of ``queries`` searches of one kind and filter.

    The exact answers are computed after all timed queries, so the brute force's
    multi-threaded matrix products never run next to a timed query.
    """
    from indexer.catalog import PhotoFilter

    allowed = None
    if flt is not None:
        allowed = service.library.catalog.photo_ids_matching(PhotoFilter(client=flt))
    pool = ids if allowed is None else allowed
    times, asked = [], []
    for q in range(queries + 3):
        if kind == "text":
            text = " ".join(rng.choice(WORDS, size=rng.integers(2, 6))) + f" {q}"
            query_vector = service.encoder.queries[service.encoder.next % len(
                service.encoder.queries)]
            started = time.perf_counter()
            hits = service.by_text(text, PhotoFilter(client=flt), k=k)
            elapsed = time.perf_counter() - started
            exclude = None
        else:
            photo = int(rng.choice(pool))
            started = time.perf_counter()
            hits = service.similar(photo, PhotoFilter(client=flt), k=k)
            elapsed = time.perf_counter() - started
            exclude = int(np.searchsorted(ids, photo))
            query_vector = vectors[exclude]
        if q >= 3:  # the first three are warm-up
            times.append(1000 * elapsed)
            asked.append((query_vector, exclude, {h.photo.id for h in hits}))
    mask = None if allowed is None else np.isin(ids, allowed)
    recalls = []
    for query_vector, exclude, got in asked:
        expected = set(ids[exact_top(vectors, query_vector, k, mask, exclude)].tolist())
        recalls.append(len(got & expected) / max(1, len(expected)))
    return np.percentile(times, 50), np.percentile(times, 95), float(np.mean(recalls))


def resident_memory(library_dir: Path) -> dict:
    """RSS of a fresh process that opens the library and loads its index (no rebuild)."""
    code = (
        "import json,sys\n"
        "from _memory import measure\n"
        f"print(json.dumps(measure({str(library_dir)!r})))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_size(n, args, text_encoder, work) -> None:
    from indexer.catalog import PhotoFilter
    from search.query import SearchService

    world = VectorWorld.create(n, seed=n)
    started = time.perf_counter()
    library, ids, vectors = build_library(work / f"library-{n}", world, n)
    setup = time.perf_counter() - started
    queries = world.text_queries(args.queries + 3, seed=n + 1)
    service = SearchService(library, lambda: SyntheticTextEncoder(text_encoder, queries,
                                                                   "benchmark"))
    started = time.perf_counter()
    index = service.vector_index()
    build = time.perf_counter() - started
    print(f"## {n:,} photos — {index.kind} index ({type(index._index).__name__}), "
          f"built from the catalog in {build:.1f} s; library set up in {setup:.0f} s")
    print("| query | client filter | p50 ms | p95 ms | recall@10 vs exact |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(n)
    for kind in ("text", "similar"):
        for flt, label in ((None, "none"), (SMALL, "1% of photos"), (LARGE, "30% of photos")):
            service.encoder.next = 0
            p50, p95, recall = measure(service, kind, flt, args.queries, vectors, ids, rng)
            print(f"| {kind} | {label} | {p50:.1f} | {p95:.1f} | {recall:.3f} |")
    lookups = []
    for client in (SMALL, LARGE):
        library.catalog._ids_cache.clear()
        started = time.perf_counter()
        library.catalog.photo_ids_matching(PhotoFilter(client=client))
        lookups.append(1000 * (time.perf_counter() - started))
    print(f"\n(allowed ids from the catalog, first query of a client after any change: "
          f"{lookups[0]:.1f} ms for 1%, {lookups[1]:.1f} ms for 30%; later queries reuse "
          "them until the catalog changes — the rows above)")
    library.close()
    memory = resident_memory(work / f"library-{n}")
    per100k = memory["index_mb"] * 100_000 / n
    print(f"resident memory of a search service process: {memory['base_mb']:.0f} MB after "
          f"imports, +{memory['index_mb']:.0f} MB with the index loaded "
          f"({per100k:.0f} MB per 100k photos), +{memory['query_mb']:.0f} MB after "
          "filtered queries (catalog pages); the text model is extra (see below)\n")
    if args.levers:
        index_levers(vectors, ids, world, args)
    del service, index, vectors
    gc.collect()
    shutil.rmtree(work / f"library-{n}", ignore_errors=True)


def index_levers(vectors, ids, world, args) -> None:
    """Index types side by side on the same vectors: build time, memory, latency, recall."""
    import faiss

    from indexer.vectors import VectorIndex, ivf_lists, ivf_probes

    n, dim = vectors.shape
    rng = np.random.default_rng(1)
    text_q = world.text_queries(args.queries, seed=99)
    photo_q = vectors[rng.integers(0, n, args.queries)]
    truth = {}
    for name, qs in (("text", text_q), ("photo", photo_q)):
        scores = qs @ vectors.T
        truth[name] = [set(ids[np.argpartition(-s, 10)[:10]].tolist()) for s in scores]
    print(f"### index types at {n:,} vectors (one query at a time, one thread)")
    print("| index | build s | MB | text p50 ms | text recall@10 | photo p50 ms | "
          "photo recall@10 |")
    print("|---|---|---|---|---|---|---|")

    def report(label, build_s, mb, search):
        cells = []
        for name, qs in (("text", text_q), ("photo", photo_q)):
            times, recalls = [], []
            for q, want in zip(qs, truth[name], strict=True):
                started = time.perf_counter()
                got = search(q)
                times.append(1000 * (time.perf_counter() - started))
                recalls.append(len(set(got) & want) / 10)
            cells += [f"{np.median(times):.2f}", f"{np.mean(recalls):.3f}"]
        print(f"| {label} | {build_s:.1f} | {mb:.0f} | " + " | ".join(cells) + " |")

    chunks = [(ids[i:i + 20000], vectors[i:i + 20000]) for i in range(0, n, 20000)]
    for limit, label in ((n, "exact (flat)"), (0, "IVF-flat (kezhao's approximate)")):
        before = rss_mb()
        started = time.perf_counter()
        index = VectorIndex.from_batches(lambda: iter(chunks), n, exact_limit=limit)
        build = time.perf_counter() - started
        mb = rss_mb() - before
        report(label + (f", nprobe {index._index.nprobe}/{index._index.nlist}"
                        if limit == 0 else ""), build, mb,
               lambda q, index=index: [h.photo_id for h in index.search(q, 10)])
        if limit == 0:
            ivf = index._index
            for nprobe in sorted({ivf_probes(ivf.nlist) // 2, ivf_probes(ivf.nlist) * 2}):
                def search(q, nprobe=nprobe, ivf=ivf):
                    params = faiss.SearchParametersIVF(nprobe=nprobe)
                    return ivf.search(q[None], 10, params=params)[1][0]
                report(f"IVF-flat, nprobe {nprobe}/{ivf.nlist}", 0, 0, search)
        if limit == n:
            flat = index._index
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            report(f"exact (flat), {os.cpu_count()} OpenMP threads per query", 0, 0,
                   lambda q, flat=flat: flat.search(q[None], 10)[1][0])
        del index
        gc.collect()
    if not args.hnsw:
        print(f"(HNSW: run with --hnsw; lists for the IVF: {ivf_lists(n)})\n")
        return
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    before = rss_mb()
    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    hnsw.add(np.ascontiguousarray(vectors))
    build = time.perf_counter() - started
    mb = rss_mb() - before
    faiss.omp_set_num_threads(1)
    for ef in (32, 64, 128):
        params = faiss.SearchParametersHNSW(efSearch=ef)
        report(f"HNSW M=32, efSearch {ef}", build if ef == 32 else 0, mb if ef == 32 else 0,
               lambda q, params=params: ids[hnsw.search(q[None], 10, params=params)[1][0]])
    print()


def text_levers(args, work) -> None:
    """Text tower latency per query: full 77 tokens vs early stop, precision, cache."""
    import torch

    from models.encoder import _encode_tokens
    from models.random_init import random_weight_encoder

    print("### text encoder, one query (ms; random weights)")
    print("| preset | precision | full 77 tokens p50 | early stop p50 | cached p50 | "
          "cosine early stop vs full |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for preset in ("multilingual", "english"):
        for precision in ("fp32", "bf16", "int8"):
            encoder, _ = random_weight_encoder(preset, work_dir=work, precision=precision)
            full, early, cached, cosines = [], [], [], []
            for i in range(args.queries + 3):
                text = " ".join(rng.choice(WORDS, size=rng.integers(2, 6))) + f" {i}"
                tokens = encoder._tokenizer([text])
                with torch.inference_mode():
                    started = time.perf_counter()
                    reference = _encode_tokens(encoder._model, tokens)
                    t_full = time.perf_counter() - started
                started = time.perf_counter()
                vector = encoder.encode_texts([text])[0]
                t_early = time.perf_counter() - started
                started = time.perf_counter()
                encoder.encode_texts([text])
                t_cached = time.perf_counter() - started
                if i >= 3:
                    full.append(1000 * t_full)
                    early.append(1000 * t_early)
                    cached.append(1000 * t_cached)
                    ref = torch.nn.functional.normalize(reference.float(), dim=-1)[0].numpy()
                    cosines.append(float(ref @ vector))
            print(f"| {preset} | {precision} | {np.median(full):.1f} | {np.median(early):.1f} "
                  f"| {np.median(cached):.3f} | {min(cosines):.5f} |")
            del encoder
            gc.collect()
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--levers", action="store_true",
                        help="also compare index types and text-tower settings")
    parser.add_argument("--hnsw", action="store_true", help="include HNSW in --levers")
    parser.add_argument("--precision", default=None,
                        help="text tower precision (default: the service's, see "
                        "models.default_precision)")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)

    import faiss
    import torch

    from models import default_precision
    from models.random_init import random_weight_encoder

    args.precision = args.precision or default_precision()
    work = Path(tempfile.mkdtemp(prefix="kezhao-query-", dir=args.work))
    try:
        before = rss_mb()
        text_encoder, note = random_weight_encoder("multilingual", work_dir=work,
                                                   precision=args.precision)
        model_mb = rss_mb() - before
        print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} "
              f"({torch.get_num_threads()} threads), faiss {faiss.__version__}, load average "
              f"{os.getloadavg()[0]:.1f}")
        print(f"text tower: {note}; {args.precision}; +{model_mb:.0f} MB resident\n")
        for n in args.sizes:
            run_size(n, args, text_encoder, work)
        if args.levers:
            text_levers(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
