"""Thumbnails: small, correctly shaped JPEGs, written without leaving debris behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from indexer.thumbnails import thumbnail_name, write_thumbnail


def _photo(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), (30, 120, 200))
    image.paste((240, 200, 40), (0, 0, width // 2, height // 2))
    return image


@pytest.mark.parametrize(
    ("size", "expected"),
    [((4000, 3000), (320, 240)), ((3000, 4000), (240, 320)), ((1000, 1000), (320, 320))],
)
def test_thumbnail_fits_the_bound_and_keeps_the_shape(
    tmp_path: Path, size: tuple[int, int], expected: tuple[int, int]
) -> None:
    dest = write_thumbnail(_photo(*size), tmp_path / "t.jpg")
    with Image.open(dest) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.mode == "RGB"
        assert thumb.size == expected
        thumb.load()
        # The yellow quarter stays top-left: nothing was rotated or flipped.
        assert thumb.getpixel((5, 5))[2] < 100
        assert thumb.getpixel((thumb.width - 5, thumb.height - 5))[2] > 150


def test_custom_bound_and_small_images_are_not_enlarged(tmp_path: Path) -> None:
    with Image.open(write_thumbnail(_photo(1600, 900), tmp_path / "a.jpg", max_side=160)) as a:
        assert a.size == (160, 90)
    with Image.open(write_thumbnail(_photo(100, 60), tmp_path / "b.jpg")) as b:
        assert b.size == (100, 60)


def test_parent_folders_are_created_and_no_temp_files_remain(tmp_path: Path) -> None:
    thumbs = tmp_path / "thumbs"
    dest = thumbs / thumbnail_name("abcdef0123456789")
    assert write_thumbnail(_photo(800, 600), dest) == dest
    assert sorted(p.relative_to(thumbs).as_posix() for p in thumbs.rglob("*")) == [
        "ab",
        "ab/abcdef0123456789.jpg",
    ]


def test_rewriting_replaces_the_old_thumbnail(tmp_path: Path) -> None:
    dest = tmp_path / "t.jpg"
    write_thumbnail(_photo(800, 600), dest)
    write_thumbnail(_photo(600, 800), dest)
    with Image.open(dest) as thumb:
        assert thumb.size == (240, 320)
    assert os.listdir(tmp_path) == ["t.jpg"]


def test_failed_write_leaves_neither_a_partial_file_nor_debris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        write_thumbnail(_photo(800, 600), tmp_path / "t.jpg")
    assert os.listdir(tmp_path) == []


def test_transparent_images_become_white_jpegs(tmp_path: Path) -> None:
    dest = write_thumbnail(Image.new("RGBA", (400, 200), (0, 0, 0, 0)), tmp_path / "t.jpg")
    with Image.open(dest) as thumb:
        assert thumb.mode == "RGB"
        assert min(thumb.getpixel((10, 10))) > 245


def test_thumbnail_names_are_shared_by_identical_content() -> None:
    digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert thumbnail_name(digest) == f"9f/{digest}.jpg"
    assert thumbnail_name(digest.upper()) == thumbnail_name(digest)
    assert thumbnail_name(digest) != thumbnail_name("0" + digest[1:])


@pytest.mark.parametrize("bad", ["", "ab", "../etc/passwd", "ab/cd", "ab cd", "a.b.c"])
def test_thumbnail_names_cannot_escape_the_thumbs_folder(bad: str) -> None:
    with pytest.raises(ValueError):
        thumbnail_name(bad)
