"""Questions over the library: by words, by an example photo, or 'more like this one'.

Filters (client, project, tag, dates) become the set of allowed photo ids that FAISS
searches within, so a client with one photo among a million gets that photo back first
— a filter applied after a global top-k would lose it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexer.catalog import Photo, PhotoFilter
from indexer.decode import decode_photo
from indexer.errors import DecodeError, KezhaoError
from indexer.library import Library
from indexer.pipeline import ModelMismatchError
from indexer.vectors import IndexHealth, VectorIndex

MAX_QUERY_CHARS = 500
MAX_RESULTS = 1000


class QueryError(KezhaoError):
    """A question we cannot answer as asked (empty, too long, unknown client...)."""


class QueryEncoder(Protocol):
    model_id: str
    image_size: int

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...

    def encode_images(self, images: list[Any]) -> np.ndarray: ...


@dataclass(frozen=True)
class Hit:
    photo: Photo
    score: float
    reason: str

    def as_dict(self) -> dict:
        data = asdict(self.photo)
        data["tags"] = list(self.photo.tags)
        data["score"] = round(self.score, 4)
        data["reason"] = self.reason
        return data


class SearchService:
    """Holds the loaded vector index and (lazily) the model for one library."""

    def __init__(
        self, library: Library, encoder_factory: Callable[[], QueryEncoder] | None = None
    ) -> None:
        self.library = library
        self._encoder_factory = encoder_factory
        self._encoder: QueryEncoder | None = None
        self._index: VectorIndex | None = None
        self.health: IndexHealth | None = None

    # ------------------------------------------------------------ plumbing
    @property
    def encoder(self) -> QueryEncoder:
        if self._encoder is None:
            if self._encoder_factory is None:
                raise QueryError("no model configured for text or image queries")
            encoder = self._encoder_factory()
            indexed_with = self.library.catalog.model_id()
            if indexed_with is not None and indexed_with != encoder.model_id:
                raise ModelMismatchError(
                    f"this library was indexed with {indexed_with}, but the model in use is "
                    f"{encoder.model_id}; search with the same --model/--checkpoint or "
                    "re-index into a new library"
                )
            self._encoder = encoder
        return self._encoder

    def vector_index(self) -> VectorIndex | None:
        """The current index, updated in place (or reloaded) when the catalog moved on."""
        generation = self.library.catalog.vectors_generation()
        if self._index is None or self._index.generation != generation:
            self._index, self.health = self.library.vectors.refresh(
                self._index, self.library.catalog
            )
        return self._index

    def _allowed(self, flt: PhotoFilter) -> np.ndarray | None:
        if flt.client is not None and not self.library.catalog.client_exists(flt.client):
            known = ", ".join(c.name for c in self.library.catalog.clients()[:10]) or "none yet"
            raise QueryError(f"no client named {flt.client!r} (known clients: {known})")
        if flt.is_empty():
            return None
        return self.library.catalog.photo_ids_matching(flt)

    def _run(
        self, vector: np.ndarray, flt: PhotoFilter | None, k: int, reason: str,
        exclude: int | None = None,
    ) -> list[Hit]:
        flt = flt or PhotoFilter()
        if not 1 <= k <= MAX_RESULTS:
            raise QueryError(f"number of results must be between 1 and {MAX_RESULTS}")
        index = self.vector_index()
        if index is None:
            return []
        allowed = self._allowed(flt)
        if exclude is not None and allowed is not None:
            allowed = allowed[allowed != exclude]
        extra = 1 if exclude is not None else 0
        raw = index.search(vector, k + extra, allowed)
        raw = [h for h in raw if h.photo_id != exclude][:k]
        photos = self.library.catalog.photos_by_ids([h.photo_id for h in raw])
        return [
            Hit(photos[h.photo_id], h.score, f"{reason} {h.score:.3f}")
            for h in raw
            if h.photo_id in photos
        ]

    # ------------------------------------------------------------- queries
    def by_text(self, query: str, flt: PhotoFilter | None = None, k: int = 20) -> list[Hit]:
        text = " ".join((query or "").split())
        if not text:
            raise QueryError("type some words to search for, e.g. 'product demo at booth'")
        if len(text) > MAX_QUERY_CHARS:
            raise QueryError(f"query is too long ({len(text)} characters, at most "
                             f"{MAX_QUERY_CHARS})")
        vector = self.encoder.encode_texts([text])[0]
        return self._run(vector, flt, k, "image similarity")

    def by_image(self, path: Path, flt: PhotoFilter | None = None, k: int = 20) -> list[Hit]:
        """Search with any image file as the example (it need not be in the library)."""
        try:
            decoded = decode_photo(Path(path), min_side=self.encoder.image_size)
        except DecodeError as err:
            raise QueryError(f"cannot use {path} as an example: {err}") from err
        vector = self.encoder.encode_images([decoded.image])[0]
        return self._run(vector, flt, k, "looks like example")

    def similar(self, photo_id: int, flt: PhotoFilter | None = None, k: int = 20) -> list[Hit]:
        """Photos most like an indexed one, from its stored vector: no model, no decode."""
        vector = self.library.catalog.embedding(int(photo_id))
        if vector is None:
            raise QueryError(f"no indexed photo with id {photo_id}")
        return self._run(vector, flt, k, "similar", exclude=int(photo_id))

    def resolve_photo(self, ref: str) -> int | Path:
        """A photo reference from a user: an indexed id, an indexed path, or a file."""
        ref = ref.strip()
        if ref.isdigit():
            return int(ref)
        path = Path(ref).expanduser()
        try:
            resolved = str(path.resolve())
        except OSError:
            resolved = str(path)
        photo_id = self.library.catalog.photo_id_for_path(resolved)
        if photo_id is not None:
            return photo_id
        if path.is_file():
            return path
        raise QueryError(f"{ref} is neither an indexed photo id nor an image file")
