"""Plain records of text read from photos, as the catalog stores and returns them.

Kept apart from the catalog's query code so the OCR pass, search and the UI share one
vocabulary without importing each other, and apart from ``models`` so the catalog never
depends on a neural package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

OCR_STATES = ("text", "no_text", "failed")
"""``text``: lines were read; ``no_text``: the detector (or recogniser) found nothing
readable; ``failed``: the photo could not be read, ``message`` says why."""

Box = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class OcrTask:
    """A photo the OCR pass still has to read, with what the catalog knows of its file."""

    photo_id: int
    path: str
    content_hash: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class OcrLineRecord:
    """One stored line: text, recogniser confidence, corners as fractions of the image."""

    text: str
    confidence: float
    box: Box

    def as_dict(self) -> dict:
        return {
            "text": self.text,
            "confidence": round(self.confidence, 4),
            "box": [list(corner) for corner in self.box],
        }


@dataclass(frozen=True)
class OcrRead:
    """The text read from one photo. ``current`` is False when the photo's content
    changed after it was read (the next pass reads it again)."""

    photo_id: int
    state: str
    message: str | None
    model_version: str
    read_at: str
    current: bool
    lines: tuple[OcrLineRecord, ...] = ()

    @property
    def full_text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def as_dict(self) -> dict:
        return {
            "state": self.state,
            "message": self.message,
            "model_version": self.model_version,
            "read_at": self.read_at,
            "current": self.current,
            "lines": [line.as_dict() for line in self.lines],
        }


def encode_box(box: Sequence[Sequence[float]]) -> str:
    """A box as compact JSON text for the catalog: ``[[x, y], ...]``."""
    return json.dumps([[round(float(x), 4), round(float(y), 4)] for x, y in box])


def decode_box(text: str) -> Box:
    """Inverse of :func:`encode_box`; a damaged value reads as an empty box."""
    try:
        return tuple((float(x), float(y)) for x, y in json.loads(text))
    except (ValueError, TypeError):
        return ()


def escape_like(text: str) -> str:
    """Escape ``text`` for a SQL LIKE pattern using ``\\`` as the escape character."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def fts_phrase(text: str) -> str:
    """``text`` as one FTS5 phrase: inside double quotes nothing is query syntax."""
    return '"' + text.replace('"', '""') + '"'
