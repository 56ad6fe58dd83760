"""Small JPEG previews for the web app and the CLI.

Thumbnails are named after the photo's content hash, so copies of the same bytes in several
folders share one file and a moved photo keeps its thumbnail. They are written atomically:
a crash or a full disk never leaves a half-written JPEG that the web app would serve.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from PIL import Image

from indexer.decode import to_rgb

_JPEG_QUALITY = 85
_SAFE_HASH = re.compile(r"[0-9a-z]{3,128}")


def thumbnail_name(content_hash: str) -> str:
    """Relative path of the thumbnail for ``content_hash``, sharded as ``ab/abcdef….jpg``.

    Sharding by the first two characters keeps any one folder to a few thousand entries.
    Only hash-like names are accepted, so the result can never escape the thumbs folder.
    """
    digest = content_hash.strip().lower()
    if not _SAFE_HASH.fullmatch(digest):
        raise ValueError(f"not a content hash: {content_hash!r}")
    return f"{digest[:2]}/{digest}.jpg"


def write_thumbnail(image: Image.Image, dest: Path, max_side: int = 320) -> Path:
    """Save a JPEG of ``image`` fitting in ``max_side`` x ``max_side`` to ``dest``.

    The aspect ratio is kept and small images are not enlarged. No EXIF is written: the
    pixels are already upright, and an orientation tag would make viewers turn them again.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    thumb = to_rgb(image)
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            thumb.save(fh, format="JPEG", quality=_JPEG_QUALITY, optimize=True)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dest
