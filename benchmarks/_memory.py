"""Run in a fresh process by query_latency.py: resident memory of a search service.

A separate process, so nothing the benchmark itself allocated (its vectors, the model)
is counted.
"""

from __future__ import annotations

from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(library_dir: str, clients: tuple[str, ...] = ("客户-1%", "客户-30%")) -> dict:
    import faiss  # noqa: F401 - counted in the base, as any service has it loaded
    import numpy as np

    from indexer.catalog import PhotoFilter
    from indexer.library import open_library
    from search.query import SearchService

    base = _rss_mb()
    library = open_library(Path(library_dir))
    service = SearchService(library)
    index = service.vector_index()
    loaded = _rss_mb()
    rng = np.random.default_rng(0)
    for client in (None, *clients):
        ids = library.catalog.photo_ids_matching(PhotoFilter(client=client))
        for photo in rng.choice(ids, 5):
            service.similar(int(photo), PhotoFilter(client=client))
    queried = _rss_mb()
    return {
        "base_mb": base,
        "index_mb": loaded - base,
        "query_mb": queried - loaded,
        "health": service.health.state if service.health else None,
        "kind": index.kind,
    }
