"""Plain records the catalog returns for tags, suggestions and review decisions.

Kept out of `catalog.py` so the tag service, the CLI and the web app can share them without
reading the SQL module, and so they stay frozen values rather than live rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TAG_STATES = ("suggested", "accepted", "rejected")
SOURCE_BUILTIN = "builtin"  # from models/vocabulary.json, kept in step with it
SOURCE_EDITED = "edited"  # a built-in tag the user changed: vocabulary updates leave it alone
SOURCE_USER = "user"  # added by the user


@dataclass(frozen=True)
class TagRow:
    key: str
    label_zh: str
    label_en: str
    prompts: tuple[str, ...]
    source: str
    retired: bool
    threshold: float | None
    updated_at: str

    def as_dict(self) -> dict:
        return {
            "key": self.key, "zh": self.label_zh, "en": self.label_en,
            "prompts": list(self.prompts), "source": self.source, "retired": self.retired,
            "threshold": self.threshold,
        }


@dataclass(frozen=True)
class TagVectorRow:
    """A tag's prompt-ensemble vector for one model. `source_sha` says which prompts it was
    built from, so an edited prompt is noticed without comparing vectors."""

    tag_key: str
    model_id: str
    source_sha: str
    vector: np.ndarray


@dataclass(frozen=True)
class TagCalibrationRow:
    """What a tag's suggestions were last scored with: its prior vector (None for a tag
    learned from examples only by its classifier) and that prior's median (`center`) and
    spread (`scale`) over `n` library photos. `signature` names the prompts, reviews and
    classifier behind them, so a change to any of them is noticed without recomputing."""

    tag_key: str
    model_id: str
    signature: str
    prior: np.ndarray | None
    center: float | None
    scale: float | None
    n: int
    calibrated_at: str = ""


@dataclass(frozen=True)
class LibraryCalibration:
    """The library-wide side of the calibration: the library's size when it was last
    calibrated in full, the spread pooled over all tags, and the mean embedding that
    reviewed photos are taken relative to."""

    model_id: str
    photos: int
    pooled_scale: float
    mean: np.ndarray
    calibrated_at: str = ""


@dataclass(frozen=True)
class StoredTagModel:
    tag_key: str
    model_id: str
    weights: np.ndarray
    bias: float
    positives: int
    negatives: int
    trained_at: str


@dataclass(frozen=True)
class Suggestion:
    """One pending suggestion as the review lists show it."""

    photo_id: int
    path: str
    client: str | None
    project: str | None
    taken_at: str | None
    thumbnail: str | None
    tag_key: str
    label_zh: str
    label_en: str
    score: float
    source: str

    def as_dict(self) -> dict:
        return {
            "photo_id": self.photo_id, "path": self.path, "client": self.client,
            "project": self.project, "taken_at": self.taken_at, "thumbnail": self.thumbnail,
            "tag": self.tag_key, "zh": self.label_zh, "en": self.label_en,
            "score": round(self.score, 4), "source": self.source,
        }


@dataclass(frozen=True)
class PendingCount:
    """Pending suggestions of one tag in a selection, for the review screen's tag list."""

    tag_key: str
    label_zh: str
    label_en: str
    count: int
    top_score: float

    def as_dict(self) -> dict:
        return {"tag": self.tag_key, "zh": self.label_zh, "en": self.label_en,
                "count": self.count, "top_score": round(self.top_score, 4)}


@dataclass(frozen=True)
class TagState:
    state: str
    score: float | None
    source: str | None


@dataclass(frozen=True)
class ExportRow:
    """A photo with its accepted tags, for writing XMP sidecars."""

    photo_id: int
    path: str
    root: str | None
    tags: tuple[tuple[str, str, str], ...] = field(default=())  # (key, zh, en)
