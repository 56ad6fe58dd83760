"""Larger previews for the photo details view, made on first request and cached.

The grid only ever shows the small thumbnails written at index time. When someone opens
one photo, a bigger picture helps, but streaming the original (often 20+ MB, maybe HEIC
the browser cannot show) would be slow and would expose the file itself. So the original
is decoded once, downscaled (JPEG draft decoding keeps that cheap), and saved next to the
thumbnails as ``thumbs/large/ab/<hash>.jpg``; later requests read the cached file.
"""

from __future__ import annotations

from pathlib import Path

from indexer.catalog import Photo
from indexer.decode import decode_photo
from indexer.library import Library
from indexer.thumbnails import thumbnail_name, write_thumbnail

PREVIEW_MAX_SIDE = 1280
_PREVIEW_DIR = "large"


def preview_path(library: Library, photo: Photo) -> Path:
    """Where the cached preview of ``photo`` lives (whether or not it exists yet)."""
    return library.thumbs_dir / _PREVIEW_DIR / thumbnail_name(photo.content_hash)


def ensure_preview(library: Library, photo: Photo, max_side: int = PREVIEW_MAX_SIDE) -> Path:
    """The cached preview of ``photo``, decoding its original once if needed.

    Raises :class:`indexer.errors.DecodeError` when the original cannot be read any more
    (moved away, damaged since indexing); callers fall back to the small thumbnail.
    """
    dest = preview_path(library, photo)
    if dest.is_file():
        return dest
    decoded = decode_photo(Path(photo.path), min_side=max_side)
    return write_thumbnail(decoded.image, dest, max_side=max_side)
