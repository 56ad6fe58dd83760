"""The library folder: one per installation, holding everything kezhao writes.

    <library>/catalog.db         SQLite catalog, the source of truth (embeddings included)
    <library>/vectors.faiss      FAISS index derived from the catalog (+ .json stamp)
    <library>/thumbs/            thumbnails, named by content hash
    <library>/trash/             photos moved out of the way, restorable
    <library>/models/            downloaded model weights and tokenizers

The default location follows the XDG convention (`$XDG_DATA_HOME/kezhao`, usually
`~/.local/share/kezhao`); `KEZHAO_LIBRARY` or `--library` choose another.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from indexer.catalog import Catalog
from indexer.errors import KezhaoError
from indexer.vectors import VectorStore

LIBRARY_ENV = "KEZHAO_LIBRARY"


class LibraryError(KezhaoError):
    """The library folder cannot be used (not a directory, not writable)."""


def default_library_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(LIBRARY_ENV):
        return Path(env[LIBRARY_ENV]).expanduser()
    data_home = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")) / ".local" / "share")
    return Path(data_home).expanduser() / "kezhao"


@dataclass
class Library:
    root: Path
    catalog: Catalog

    @property
    def vectors(self) -> VectorStore:
        return VectorStore(self.root / "vectors.faiss")

    @property
    def thumbs_dir(self) -> Path:
        return self.root / "thumbs"

    @property
    def trash_dir(self) -> Path:
        return self.root / "trash"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_library(path: Path) -> Library:
    """Open (creating if needed) the library at `path`."""
    root = Path(path).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise LibraryError(f"library path {root} exists and is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("thumbs", "trash", "models"):
            (root / sub).mkdir(exist_ok=True)
    except OSError as err:
        raise LibraryError(f"cannot create library folder {root}: {err.strerror}") from err
    library = Library(root=root, catalog=Catalog(root / "catalog.db"))
    from indexer.trash import recover_interrupted  # here: trash imports this module

    recover_interrupted(library)  # finish or undo a move to/from the trash a crash cut off
    return library
