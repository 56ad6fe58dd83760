"""The library trash: moves that can always be undone, survive crashes, and never reach
outside the indexed folders. Indexed with the tiny test model (no semantics); the vectors
only matter here as entries that must leave and re-enter the search index."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import indexer.trash as trash_module
from indexer.catalog import Catalog, PhotoFilter
from indexer.library import open_library
from indexer.pipeline import index_paths
from indexer.trash import (
    TrashError,
    empty_trash,
    list_trash,
    parse_age,
    restore,
    restore_all,
    trash_photo,
)
from search.cleanup import find_duplicates, resolve_group
from search.query import SearchService
from tests.conftest import write_photo
from tests.variants import save_original, save_variant


class Crash(BaseException):
    """Stands for the process dying: nothing in kezhao may catch it and tidy up."""


@pytest.fixture
def photos(tmp_path, library, tiny_encoder):
    root = tmp_path / "photos"
    original = save_original(root / "张三" / "会议" / "orig.jpg", seed=3)
    for kind in ("half", "q60", "png"):
        save_variant(original, kind, root / "张三" / "会议")
    for seed in (10, 11, 12):
        write_photo(root / "张三" / "会议" / f"other{seed}.jpg", seed=seed, size=(640, 480))
    index_paths(library, tiny_encoder, [root])
    return root


def _id(library, path: Path) -> int:
    photo_id = library.catalog.photo_id_for_path(str(path))
    assert photo_id is not None
    return photo_id


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _reopen(library):
    library.close()
    return open_library(library.root)


def test_resolve_moves_copies_to_trash_and_out_of_search(photos, library, tiny_encoder):
    service = SearchService(library, lambda: tiny_encoder)
    [group] = find_duplicates(library)
    keeper = group.keeper_id
    copies = [m.photo for m in group.members if not m.keeper]
    before = {p.path: Path(p.path).read_bytes() for p in copies}
    generation = library.catalog.vectors_generation()

    result = resolve_group(library, group.id)

    assert result.keeper_id == keeper and not result.skipped
    assert sorted(e.photo_id for e in result.trashed) == sorted(p.id for p in copies)
    for entry in result.trashed:
        assert not os.path.exists(entry.original_path)
        in_trash = library.root / entry.trash_path
        assert in_trash.read_bytes() == before[entry.original_path]
        assert entry.reason.startswith(f"duplicate of #{keeper}: ")
        assert library.catalog.get_photo(entry.photo_id).status == "trashed"
    assert Path(library.catalog.get_photo(keeper).path).exists()
    assert library.catalog.vectors_generation() > generation
    index, _ = library.vectors.load(library.catalog)
    assert index.size == 4
    trashed_ids = {p.id for p in copies}
    hits = service.similar(keeper, k=50) + service.by_text("会议", k=50)
    assert hits and not trashed_ids & {h.photo.id for h in hits}
    assert find_duplicates(library) == []
    assert {e.photo_id for e in list_trash(library)} == trashed_ids


def test_restore_puts_back_identical_bytes_and_metadata(photos, library, tiny_encoder):
    path = photos / "张三" / "会议" / "orig_q60.jpg"
    photo_id = _id(library, path)
    data, mtime = path.read_bytes(), path.stat().st_mtime_ns
    entry = trash_photo(library, photo_id, "test")
    assert not path.exists()

    back = restore(library, entry.id)

    assert back.state == "restored" and path.read_bytes() == data
    assert path.stat().st_mtime_ns == mtime
    assert library.catalog.get_photo(photo_id).status == "ok"
    assert not (library.root / entry.trash_path).parent.exists()
    service = SearchService(library, lambda: tiny_encoder)
    assert photo_id in {h.photo.id for h in service.by_text("x", k=50)}
    with pytest.raises(TrashError, match="restored, not in the trash"):
        restore(library, entry.id)


def test_restore_all_and_a_taken_original_path(photos, library):
    paths = [photos / "张三" / "会议" / n for n in ("orig_half.jpg", "orig_png.png")]
    data = {p: p.read_bytes() for p in paths}
    entries = [trash_photo(library, _id(library, p)) for p in paths]
    paths[0].write_bytes(b"someone else's new file")

    with pytest.raises(TrashError, match="another file is there now"):
        restore(library, entries[0].id)
    assert paths[0].read_bytes() == b"someone else's new file"
    report = restore_all(library)
    assert [e.id for e in report.done] == [entries[1].id]
    assert report.skipped[0][0] == entries[0].id
    assert paths[1].read_bytes() == data[paths[1]]
    assert [e.id for e in list_trash(library)] == [entries[0].id]


def test_moves_across_filesystems_copy_verify_then_remove(photos, library, monkeypatch):
    monkeypatch.setattr(trash_module, "_same_filesystem", lambda a, b: False)
    path = photos / "张三" / "会议" / "other10.jpg"
    data = path.read_bytes()
    entry = trash_photo(library, _id(library, path))
    assert not path.exists() and (library.root / entry.trash_path).read_bytes() == data
    restore(library, entry.id)
    assert path.read_bytes() == data


def test_crash_between_journal_and_move_is_rolled_back(photos, library, monkeypatch):
    path = photos / "张三" / "会议" / "other11.jpg"
    data = path.read_bytes()
    photo_id = _id(library, path)

    def crash(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(trash_module, "_move", crash)
    with pytest.raises(Crash):
        trash_photo(library, photo_id)
    monkeypatch.undo()
    assert library.catalog.trash_entries(("moving",))

    library = _reopen(library)
    try:
        assert not library.catalog.trash_entries(("moving",))
        assert path.read_bytes() == data
        assert library.catalog.get_photo(photo_id).status == "ok"
        assert list_trash(library) == []
        assert [p.name for p in library.trash_dir.iterdir() if not p.name.startswith(".")] == []
    finally:
        library.close()


def test_crash_after_move_before_catalog_update_is_completed(photos, library, monkeypatch):
    path = photos / "张三" / "会议" / "other12.jpg"
    data = path.read_bytes()
    photo_id = _id(library, path)

    def crash(self, trash_id):
        raise Crash

    monkeypatch.setattr(Catalog, "finish_trash", crash)
    with pytest.raises(Crash):
        trash_photo(library, photo_id)
    monkeypatch.undo()
    assert not path.exists()
    assert library.catalog.get_photo(photo_id).status == "ok"  # the catalog lags behind

    library = _reopen(library)
    try:
        [entry] = list_trash(library)
        assert entry.photo_id == photo_id
        assert (library.root / entry.trash_path).read_bytes() == data
        assert library.catalog.get_photo(photo_id).status == "trashed"
        restore(library, entry.id)
        assert path.read_bytes() == data
    finally:
        library.close()


def test_crash_in_a_cross_filesystem_move_keeps_the_photo(photos, library, monkeypatch):
    """Copied to the trash but the original not yet removed: recovery finishes the move
    (the copy is verified identical); a half-written copy is thrown away instead."""
    monkeypatch.setattr(trash_module, "_same_filesystem", lambda a, b: False)
    full = photos / "张三" / "会议" / "orig_half.jpg"
    half = photos / "张三" / "会议" / "orig_png.png"
    data = {full: full.read_bytes(), half: half.read_bytes()}
    real_unlink = os.unlink

    def crash_on_original(path, *a, **k):
        if str(path) in (str(full), str(half)):
            raise Crash
        return real_unlink(path, *a, **k)

    monkeypatch.setattr(trash_module.os, "unlink", crash_on_original)
    with pytest.raises(Crash):
        trash_photo(library, _id(library, full))
    monkeypatch.setattr(trash_module.os, "unlink", real_unlink)

    def crash_mid_copy(src, dst, length=0):
        dst.write(src.read(100))
        raise Crash

    monkeypatch.setattr(trash_module.shutil, "copyfileobj", crash_mid_copy)
    with pytest.raises(Crash):
        trash_photo(library, _id(library, half))
    monkeypatch.undo()

    library = _reopen(library)
    try:
        assert [Path(e.original_path) for e in list_trash(library)] == [full]
        assert not full.exists()
        assert (library.root / list_trash(library)[0].trash_path).read_bytes() == data[full]
        assert half.read_bytes() == data[half]
        leftovers = [p for p in library.trash_dir.rglob("*") if "partial" in p.name]
        assert leftovers == []
    finally:
        library.close()


def test_crash_during_restore_is_completed(photos, library, monkeypatch):
    path = photos / "张三" / "会议" / "orig.jpg"
    data = path.read_bytes()
    entry = trash_photo(library, _id(library, path))

    def crash(self, trash_id):
        raise Crash

    monkeypatch.setattr(Catalog, "finish_restore", crash)
    with pytest.raises(Crash):
        restore(library, entry.id)
    monkeypatch.undo()
    library = _reopen(library)
    try:
        assert library.catalog.trash_entry(entry.id)["state"] == "restored"
        assert path.read_bytes() == data
        assert library.catalog.get_photo(entry.photo_id).status == "ok"
    finally:
        library.close()


def test_nothing_outside_the_indexed_folders_is_touched(photos, library, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    stray = outside / "stray.jpg"
    write_photo(stray, seed=50)
    from indexer.catalog import PhotoRecord
    from indexer.pipeline import content_hash

    [stray_id] = library.catalog.save_photos(
        [(PhotoRecord(str(stray), None, stray.stat().st_size, stray.stat().st_mtime_ns,
                      content_hash(stray)),
          library.catalog.embedding(_id(library, photos / "张三" / "会议" / "orig.jpg")))],
        library.catalog.model_id(),
    )
    before = _snapshot(outside)
    with pytest.raises(TrashError, match="not inside a folder kezhao indexes"):
        trash_photo(library, stray_id)
    assert _snapshot(outside) == before
    assert library.catalog.trash_entries(("moving", "trashed")) == []


def test_a_symlink_out_of_a_root_is_never_followed(photos, library, tmp_path):
    folder = photos / "张三" / "会议"
    outside = tmp_path / "outside"
    outside.mkdir()
    # The photo file itself replaced by a link to an identical file outside the root.
    target = folder / "other10.jpg"
    secret = outside / "other10.jpg"
    secret.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(secret)
    # A whole client folder replaced by a link to a folder outside the root.
    linked_dir = outside / "会议"
    linked_dir.mkdir()
    for name in ("other11.jpg", "orig.jpg"):
        (linked_dir / name).write_bytes((folder / name).read_bytes())
    moved_aside = photos / "张三" / "kept-aside"
    folder.rename(moved_aside)
    folder.symlink_to(linked_dir, target_is_directory=True)
    before = _snapshot(outside)

    with pytest.raises(TrashError, match="link"):
        trash_photo(library, _id(library, folder / "other11.jpg"))
    # Restoring through a folder link that leads outside is refused as well.
    folder.unlink()
    moved_aside.rename(folder)
    target_id = _id(library, folder / "other10.jpg")
    with pytest.raises(TrashError, match="symbolic link"):
        trash_photo(library, target_id)
    entry = trash_photo(library, _id(library, folder / "orig_q60.jpg"))
    folder.rename(moved_aside)
    folder.symlink_to(linked_dir, target_is_directory=True)
    with pytest.raises(TrashError, match="outside"):
        restore(library, entry.id)

    assert _snapshot(outside) == before
    assert os.path.islink(moved_aside / "other10.jpg")


def test_photo_changed_since_indexing_is_not_moved(photos, library):
    path = photos / "张三" / "会议" / "other10.jpg"
    path.write_bytes(path.read_bytes() + b"edited")
    with pytest.raises(TrashError, match="changed since it was indexed"):
        trash_photo(library, _id(library, path))
    assert path.exists()


def test_empty_deletes_only_old_entries_explicitly(photos, library):
    old = trash_photo(library, _id(library, photos / "张三" / "会议" / "orig_half.jpg"))
    young = trash_photo(library, _id(library, photos / "张三" / "会议" / "orig_png.png"))
    later = datetime.now(UTC) + timedelta(days=31)
    assert empty_trash(library, parse_age("30d")) == []
    assert (library.root / old.trash_path).exists()

    done = empty_trash(library, parse_age("0d"), now=later)

    assert sorted(e.id for e in done) == sorted([old.id, young.id])
    assert all(e.state == "emptied" for e in done)
    assert not (library.root / old.trash_path).exists()
    assert library.catalog.get_photo(old.photo_id) is None
    assert list_trash(library) == []
    assert len(library.catalog.list_photos(PhotoFilter(), limit=100)) == 5
    for bad in ("30", "d", "-1d", "30 days"):
        with pytest.raises(TrashError, match="not an age"):
            parse_age(bad)
    assert parse_age("2w") == timedelta(days=14)
