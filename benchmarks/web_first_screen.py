"""Benchmark: the web app's first screen of results on a large library.

Builds a catalog of N photos (default 100,000) whose files do not exist — only catalog rows
with random 512-d vectors and thumbnail names — so any attempt to open an original would
fail loudly. Then times what the Search screen does: the first screen (latest photos),
a text query (with a client filter and without), "find similar", each rendered to the
HTML the browser receives, next to the bare `SearchService` call for the same question
measured in the same run (the baseline). Also counts images opened and originals decoded
during the web calls: both must be 0 (thumbnails are served by id, from the cache).

The query vector comes from a stand-in text encoder (a fixed random vector): the tiny test
model has no semantics and this measures mechanics, not relevance. "page load" is what the
browser's first request runs: the latest photos plus the client, project and tag lists.

Usage: .venv/bin/python benchmarks/web_first_screen.py [--photos 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.catalog import PhotoFilter, PhotoRecord  # noqa: E402
from indexer.library import open_library  # noqa: E402
from ui.context import Services, Settings  # noqa: E402

DIM = 512
MODEL_ID = "benchmark:random-512"


class StandInEncoder:
    """Answers text queries with fixed random unit vectors: no model, no semantics."""

    model_id = MODEL_ID
    image_size = 224

    def __init__(self, seed: int = 7) -> None:
        self._rng = np.random.default_rng(seed)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        v = self._rng.normal(size=(len(texts), DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def encode_images(self, images: list) -> np.ndarray:  # pragma: no cover - unused
        raise AssertionError("no image may be encoded on the first screen")


def build_catalog(library, n: int, clients: int = 200, batch: int = 5000) -> None:
    rng = np.random.default_rng(0)
    for start in range(0, n, batch):
        rows = []
        vectors = rng.normal(size=(min(batch, n - start), DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for j, vector in enumerate(vectors):
            i = start + j
            digest = f"{i:040x}"
            record = PhotoRecord(
                path=f"/nonexistent/客户{i % clients}/p{i}.jpg", root_id=None, size=1,
                mtime_ns=0, content_hash=digest, format="JPEG", width=4000, height=3000,
                taken_at=f"20{10 + i % 14:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00",
                taken_at_source="exif", client=f"客户{i % clients}", client_source="folder",
                thumbnail=f"{digest[:2]}/{digest}.jpg",
            )
            rows.append((record, vector))
        library.catalog.save_photos(rows, MODEL_ID)
    library.catalog.bump_vectors_generation()
    library.vectors.rebuild(library.catalog)


class Counter:
    def __init__(self) -> None:
        self.opened = 0


def watch_originals(counter: Counter) -> None:
    """Count (and refuse) any image opened or decoded from now on."""
    import PIL.Image

    import search.query

    def refuse(*args, **kwargs):
        counter.opened += 1
        raise AssertionError("an image was opened")

    PIL.Image.open = refuse
    search.query.decode_photo = refuse


def timed(fn, repeat: int) -> float:
    fn()  # warm-up: index load, first FAISS call
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from ui import handlers as h
    from ui import render
    from ui.handlers_tags import filter_choices

    with tempfile.TemporaryDirectory() as tmp:
        library = open_library(Path(tmp) / "library")
        t0 = time.perf_counter()
        build_catalog(library, args.photos)
        print(f"built a catalog of {args.photos} photos in {time.perf_counter() - t0:.1f}s "
              "(files do not exist)")
        services = Services(Settings(library_dir=library.root, model="english"), library,
                            _encoder=StandInEncoder())
        counter = Counter()
        watch_originals(counter)
        search = services.search
        client = h.Filters(client="客户42")
        some_id = int(library.catalog.list_photos(PhotoFilter(), limit=1)[0].id)

        def web(fn):
            def run():
                result = fn()
                assert result.kind == "ok", result.message
                render.gallery(result)
            return run

        tags = services.tags

        def page_load():
            web(lambda: h.browse(services, h.Filters()))()
            h.client_choices(services)
            h.project_choices(services)
            filter_choices(tags)

        cases = [
            ("first screen (latest 48)", web(lambda: h.browse(services, h.Filters())),
             lambda: library.catalog.list_photos(PhotoFilter(), limit=48)),
            ("page load (+ filter lists)", page_load,
             lambda: library.catalog.list_photos(PhotoFilter(), limit=48)),
            ("text query, all clients", web(lambda: h.search_text(services, "展台",
                                                                  h.Filters())),
             lambda: search.by_text("展台", PhotoFilter(), 48)),
            ("text query, one client", web(lambda: h.search_text(services, "展台", client)),
             lambda: search.by_text("展台", PhotoFilter(client="客户42"), 48)),
            ("find similar", web(lambda: h.find_similar(services, some_id, h.Filters())),
             lambda: search.similar(some_id, PhotoFilter(), 48)),
        ]
        print(f"\n{'screen':28s} {'web ms':>9s} {'baseline ms':>12s} {'ratio':>7s}")
        for name, web_call, baseline in cases:
            base_ms = timed(baseline, args.repeat)
            web_ms = timed(web_call, args.repeat)
            print(f"{name:28s} {web_ms:9.1f} {base_ms:12.1f} {web_ms / base_ms:7.2f}")
        print(f"\nimages opened or originals decoded during web calls: {counter.opened}")
        library.close()
        if counter.opened:
            sys.exit(1)


if __name__ == "__main__":
    main()
