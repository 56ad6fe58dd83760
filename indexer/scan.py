"""Walking a photo root: which files are candidates, with the stat we compare against.

A generator over `os.scandir`, so a root of a million files never builds a list of
DirEntry objects, and nothing is opened here: unchanged files must cost one stat.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from indexer.decode import SUPPORTED_SUFFIXES


@dataclass(frozen=True)
class ScannedFile:
    path: Path
    size: int
    mtime_ns: int


def is_within(path: Path, root: Path) -> bool:
    """True when the fully resolved `path` lies inside the resolved `root`."""
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(root))
    except ValueError:
        return False
    return True


def scan_root(root: Path, *, skip: tuple[Path, ...] = ()) -> Iterator[ScannedFile]:
    """Yield supported photo files under `root`, sorted per folder for stable runs.

    Symlinked folders are not entered and a symlinked file is only taken when its
    target stays inside the root, so indexing never reaches outside what the user
    registered. Hidden folders and `skip` (the library itself, when it lies inside a
    root) are left out. Unreadable folders are skipped silently.
    """
    root = Path(root)
    skipped = {os.path.realpath(p) for p in skip}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if os.path.realpath(entry.path) not in skipped:
                        subfolders.append(Path(entry.path))
                    continue
                if Path(entry.name).suffix.lower() not in SUPPORTED_SUFFIXES:
                    continue
                if entry.is_symlink() and not is_within(Path(entry.path), root):
                    continue
                if not entry.is_file(follow_symlinks=True):
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError:
                continue
            yield ScannedFile(Path(entry.path), st.st_size, st.st_mtime_ns)
        stack.extend(reversed(subfolders))
