"""Indexing runs over real camera photos and generated bad files, and incremental re-runs."""

from __future__ import annotations

import os
import resource
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from indexer.catalog import PhotoFilter
from indexer.pipeline import ModelMismatchError, index_paths
from tests.conftest import copy_tree, write_photo


@pytest.fixture(scope="module")
def indexed_testdata(tmp_path_factory, testdata, tiny_encoder):
    """The shared test photos copied under a client folder and indexed once."""
    from indexer.library import open_library

    base = tmp_path_factory.mktemp("testdata-run")
    root = base / "photos"
    copy_tree(testdata, root / "样例客户")
    lib = open_library(base / "library")
    summary = index_paths(lib, tiny_encoder, [root])
    yield lib, root, summary
    lib.close()


def _photo(lib, path: Path):
    photo_id = lib.catalog.photo_id_for_path(str(path))
    assert photo_id is not None, f"{path} was not indexed"
    return lib.catalog.get_photo(photo_id)


def test_camera_jpegs_indexed_with_exif_dates(indexed_testdata):
    lib, root, summary = indexed_testdata
    jpgs = sorted((root / "样例客户" / "jpg").glob("*.jpg"))
    assert len(jpgs) >= 7
    canon = _photo(lib, root / "样例客户" / "jpg" / "Canon_40D.jpg")
    assert canon.taken_at == "2008-05-30T15:56:01"
    assert canon.taken_at_source == "exif"
    assert canon.camera_make == "Canon" and canon.camera_model == "Canon EOS 40D"
    assert canon.client == "样例客户" and canon.client_source == "folder"
    assert canon.project == "jpg"
    for path in jpgs:
        if path.name != "corrupted.jpg":
            assert _photo(lib, path).taken_at_source == "exif", path.name


def test_orientation_files_end_up_upright(indexed_testdata):
    lib, root, _ = indexed_testdata
    folder = root / "样例客户" / "jpg" / "orientation"
    for family in ("landscape", "portrait"):
        photos = [_photo(lib, folder / f"{family}_{i}.jpg") for i in range(1, 9)]
        shapes = {(p.width > p.height) for p in photos}
        assert shapes == {family == "landscape"}, family
        # The thumbnails were made from the decoded, rotated pixels: compare content.
        ref = _grey(lib, photos[0])
        for p in photos[1:]:
            assert np.abs(_grey(lib, p) - ref).mean() < 25, (family, p.path)


def _grey(lib, photo) -> np.ndarray:
    from PIL import Image

    with Image.open(lib.thumbs_dir / photo.thumbnail) as im:
        return np.asarray(im.convert("L").resize((32, 32)), dtype=np.float32)


def test_broken_exif_still_indexed_without_invented_dates(indexed_testdata):
    lib, root, _ = indexed_testdata
    broken = sorted((root / "样例客户" / "jpg" / "invalid").glob("*.jpg"))
    broken.append(root / "样例客户" / "jpg" / "corrupted.jpg")
    for path in broken:
        photo = _photo(lib, path)
        assert photo.status == "ok"
        # A date can only come from real EXIF or the file's mtime: never made up.
        if photo.taken_at_source == "mtime":
            mtime = os.stat(path).st_mtime
            assert photo.taken_at[:4] == str(
                __import__("datetime").datetime.fromtimestamp(mtime).year
            )


def test_heic_and_tiff_indexed(indexed_testdata):
    lib, root, _ = indexed_testdata
    heic = _photo(lib, root / "样例客户" / "heic" / "IMG_5195.HEIC")
    tiff = _photo(lib, root / "样例客户" / "tiff" / "BSG1.tiff")
    assert heic.format == "HEIF" and heic.width and heic.height
    assert tiff.format == "TIFF"
    assert lib.catalog.embedding(heic.id) is not None


def test_every_test_photo_indexed_and_searchable(indexed_testdata):
    lib, root, summary = indexed_testdata
    assert summary.failed == 0, summary.failures
    photos = [p for p in root.rglob("*") if p.suffix.lower() in {".jpg", ".heic", ".tiff"}]
    assert summary.new == len(photos)
    index, health = lib.vectors.load(lib.catalog)
    assert index is not None and index.size == len(photos) and health.state == "ok"


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_bad_files_recorded_with_reasons_and_run_completes(tmp_path, library, tiny_encoder,
                                                         testdata):
    root = tmp_path / "photos" / "客户A"
    good = write_photo(root / "good.jpg", seed=1)
    real = (testdata / "jpg" / "Canon_40D.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(real[: len(real) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "random.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "notes.jpg").write_text("meeting notes, not a photo\n" * 20)
    (root / "bomb.png").write_bytes(_png_claiming(60000, 60000))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    summary = index_paths(library, tiny_encoder, [tmp_path / "photos"])

    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert rss_growth_mb < 500
    assert summary.new == 1 and summary.failed == 5
    reasons = {Path(f.path).name: f.reason for f in library.catalog.failures()}
    assert reasons == {
        "truncated.jpg": "truncated",
        "empty.jpg": "empty",
        "random.jpg": "not_image",
        "notes.jpg": "text_file",
        "bomb.png": "too_large",
    }
    assert library.catalog.photo_id_for_path(str(good)) is not None
    # Failed files are not retried while unchanged, and stay listed.
    again = index_paths(library, tiny_encoder, [tmp_path / "photos"])
    assert again.failed == 5 and again.new == 0 and len(library.catalog.failures()) == 5


def test_incremental_skip_change_move_delete(tmp_path, library, counting_encoder):
    root = tmp_path / "photos"
    a = write_photo(root / "张三" / "会议" / "a.jpg", seed=1)
    b = write_photo(root / "张三" / "会议" / "b.jpg", seed=2)
    c = write_photo(root / "李四" / "c.jpg", seed=3)
    first = index_paths(library, counting_encoder, [root])
    assert (first.new, counting_encoder.images_encoded) == (3, 3)

    second = index_paths(library, counting_encoder, [root])
    assert second.unchanged == 3 and counting_encoder.images_encoded == 3

    write_photo(b, seed=20)  # edited in place: new content
    os.utime(b, ns=(os.stat(b).st_atime_ns, os.stat(b).st_mtime_ns + 10**9))
    moved_id = library.catalog.photo_id_for_path(str(a))
    a_new = root / "张三" / "展会" / "renamed.jpg"
    a_new.parent.mkdir()
    shutil.move(a, a_new)
    c.unlink()
    third = index_paths(library, counting_encoder, [root])
    assert (third.changed, third.moved, third.missing) == (1, 1, 1)
    assert counting_encoder.images_encoded == 4, "only the edited photo is re-encoded"
    assert library.catalog.photo_id_for_path(str(a_new)) == moved_id
    assert library.catalog.get_photo(moved_id).project == "展会"
    statuses = library.catalog.status_counts()
    assert statuses["ok"] == 2 and statuses["missing"] == 1
    assert library.catalog.clients()[0].name == "张三"


def test_copy_of_known_photo_reuses_vector(tmp_path, library, counting_encoder):
    root = tmp_path / "photos"
    a = write_photo(root / "客户" / "a.jpg", seed=5)
    index_paths(library, counting_encoder, [root])
    shutil.copy2(a, root / "客户" / "copy.jpg")
    summary = index_paths(library, counting_encoder, [root])
    assert summary.new == 1 and summary.reused_vectors == 1
    assert counting_encoder.images_encoded == 1
    assert library.catalog.status_counts()["ok"] == 2


def test_unreachable_or_empty_root_changes_nothing(tmp_path, library, tiny_encoder):
    root = tmp_path / "photos"
    write_photo(root / "客户" / "a.jpg", seed=1)
    index_paths(library, tiny_encoder, [root])
    hidden = tmp_path / "unplugged"
    root.rename(hidden)
    summary = index_paths(library, tiny_encoder, [root])
    assert summary.missing == 0 and summary.skipped_roots
    root.mkdir()  # the drive is back but empty (e.g. mounted without its files)
    summary = index_paths(library, tiny_encoder, [root])
    assert summary.missing == 0
    assert library.catalog.status_counts()["ok"] == 1


def test_client_flag_and_naming_convention(tmp_path, library, tiny_encoder):
    root = tmp_path / "photos"
    write_photo(root / "2023秋" / "张三_20231015_会议.jpg", seed=1)
    write_photo(root / "2023秋" / "IMG_20231016_101010.jpg", seed=2)
    index_paths(library, tiny_encoder, [root], client="王五")
    by_name = {Path(p.path).name: p for p in library.catalog.list_photos(PhotoFilter())}
    assert {p.client for p in by_name.values()} == {"王五"}
    assert by_name["张三_20231015_会议.jpg"].project == "2023秋"
    assert by_name["IMG_20231016_101010.jpg"].taken_at.startswith("2023-10-16")
    assert by_name["IMG_20231016_101010.jpg"].taken_at_source == "filename"


def test_convention_name_gives_client_and_date(tmp_path, library, tiny_encoder):
    root = tmp_path / "photos"
    write_photo(root / "misc" / "张三_20231015_会议.jpg", seed=1)
    index_paths(library, tiny_encoder, [root])
    (photo,) = library.catalog.list_photos(PhotoFilter())
    assert (photo.client, photo.client_source) == ("张三", "filename")
    assert photo.description == "会议"
    assert photo.taken_at.startswith("2023-10-15") and photo.taken_at_source == "filename"


def test_manual_client_survives_reindex(tmp_path, library, tiny_encoder):
    root = tmp_path / "photos"
    path = write_photo(root / "张三" / "a.jpg", seed=1)
    index_paths(library, tiny_encoder, [root])
    photo_id = library.catalog.photo_id_for_path(str(path))
    library.catalog.set_client([photo_id], "李四")
    write_photo(path, seed=9)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    index_paths(library, tiny_encoder, [root])
    assert library.catalog.get_photo(photo_id).client == "李四"


def test_other_model_refused(tmp_path, library, tiny_encoder, counting_encoder):
    root = tmp_path / "photos"
    write_photo(root / "a.jpg", seed=1)
    index_paths(library, tiny_encoder, [root])
    counting_encoder.model_id = "english:ViT-B-32/laion2b_s34b_b79k"
    write_photo(root / "b.jpg", seed=2)
    with pytest.raises(ModelMismatchError, match="indexed with model"):
        index_paths(library, counting_encoder, [root])


def test_symlink_out_of_root_not_followed(tmp_path, library, tiny_encoder):
    outside = write_photo(tmp_path / "outside" / "secret.jpg", seed=1)
    root = tmp_path / "photos"
    write_photo(root / "客户" / "a.jpg", seed=2)
    os.symlink(outside, root / "客户" / "link.jpg")
    os.symlink(outside.parent, root / "客户" / "linked-folder")
    summary = index_paths(library, tiny_encoder, [root])
    assert summary.new == 1
    assert library.catalog.photo_id_for_path(str(root / "客户" / "link.jpg")) is None
