"""Filter answers are reused for speed but never go stale: any write, through this
connection or another process's, is seen by the next query."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.catalog import PhotoFilter, PhotoRecord
from indexer.library import open_library


def _add(library, names: list[str], clients: list[str]) -> list[int]:
    rows = [
        (PhotoRecord(path=f"/photos/{name}.jpg", root_id=None, size=1, mtime_ns=1,
                     content_hash=f"h-{name}", client=client), np.ones(8, np.float32))
        for name, client in zip(names, clients, strict=True)
    ]
    return library.catalog.save_photos(rows, "synthetic")


def test_repeated_filter_is_answered_again_without_a_query(library):
    _add(library, ["a", "b", "c"], ["张三", "李四", "张三"])
    first = library.catalog.photo_ids_matching(PhotoFilter(client="张三"))
    assert library.catalog.photo_ids_matching(PhotoFilter(client="张三")) is first
    with pytest.raises(ValueError):
        first[0] = 99  # shared answers are read-only


def test_writes_from_this_connection_are_seen(library):
    ids = _add(library, ["a", "b", "c"], ["张三", "李四", "张三"])
    flt = PhotoFilter(client="张三")
    assert sorted(library.catalog.photo_ids_matching(flt)) == [ids[0], ids[2]]
    library.catalog.set_client([ids[1]], "张三")
    assert sorted(library.catalog.photo_ids_matching(flt)) == ids
    library.catalog.mark_missing([ids[0]])
    assert sorted(library.catalog.photo_ids_matching(flt)) == [ids[1], ids[2]]


def test_writes_from_another_connection_are_seen(library):
    ids = _add(library, ["a", "b"], ["张三", "李四"])
    flt = PhotoFilter(client="李四")
    assert library.catalog.photo_ids_matching(flt).tolist() == [ids[1]]
    other = open_library(library.root)  # e.g. `kezhao index` while the web app runs
    try:
        other.catalog.set_client([ids[0]], "李四")
        _add(other, ["c"], ["李四"])
    finally:
        other.close()
    assert len(library.catalog.photo_ids_matching(flt)) == 3
