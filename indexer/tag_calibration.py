"""Which tag calibrations are still good, and scoring photos with them.

A tag's probability for a photo depends on the photo alone once three things are fixed: the
tag's prior vector (prompts moved by reviews), that prior's median and spread over the
library (the calibration) and its classifier. The first two are measured over the whole
library, so they are stored (`tag_calibrations`) and reused until they may have moved:

- the tag's prompts, reviewed photos or classifier changed (its *signature* differs): that
  tag alone is recalibrated, against the library-wide statistics stored with the last full
  calibration (pooled spread, mean embedding), and rescored wherever it can matter;
- the library's size moved by more than `RECALIBRATE_FRACTION` since the last full
  calibration, or none was made yet for this model: every tag is recalibrated and every
  photo rescored.

Otherwise new photos are scored against the stored calibration and get exactly the
suggestions a full pass would give them, without the rest of the library being read.

Pure numpy over records: the tag service reads the catalog and stores the outcome.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.tag_records import LibraryCalibration, StoredTagModel, TagCalibrationRow, TagRow
from models.tagging import (
    DEFAULT_THRESHOLD,
    RECALIBRATE_FRACTION,
    Calibration,
    blend,
    blend_weight,
    calibrate_columns,
    calibration_rows,
    library_drifted,
    pooled_spread,
    prior_probability,
    prior_vector,
    sigmoid,
)

SOURCE_ZERO_SHOT = "zero-shot"
SOURCE_LEARNED = "learned"


@dataclass(frozen=True)
class TagInputs:
    """What one tag's scores are made from right now."""

    tag: TagRow
    text: np.ndarray | None  # prompt-ensemble vector; None for a tag defined by examples
    accepted: tuple[int, ...]
    rejected: tuple[int, ...]
    model: StoredTagModel | None

    @property
    def key(self) -> str:
        return self.tag.key

    @property
    def scorable(self) -> bool:
        """Rejections alone do not say what a tag is (see `prior_vector`)."""
        return self.text is not None or bool(self.accepted) or self.model is not None

    @property
    def learned(self) -> bool:
        return bool(self.accepted or self.rejected) or self.model is not None

    def signature(self, model_id: str) -> str:
        """Names everything the stored calibration of this tag was derived from."""
        h = hashlib.sha256(model_id.encode("utf-8"))
        if self.text is not None:
            h.update(b"text")
            h.update(np.ascontiguousarray(self.text, dtype=np.float32).tobytes())
        h.update(b"accepted" + ",".join(map(str, self.accepted)).encode())
        h.update(b"rejected" + ",".join(map(str, self.rejected)).encode())
        if self.model is not None:
            h.update(b"model")
            h.update(np.ascontiguousarray(self.model.weights, dtype=np.float32).tobytes())
            h.update(repr((float(self.model.bias), self.model.positives,
                           self.model.negatives)).encode())
        return h.hexdigest()[:24]


@dataclass(frozen=True)
class CalibrationPlan:
    """What has to be recomputed before photos can be scored."""

    reason: str | None  # why every tag must be recalibrated; None when none must
    changed: tuple[str, ...]  # tags to recalibrate alone (signature differs or none stored)
    dropped: tuple[str, ...]  # stored tags no longer scored (retired, nothing to go on)

    @property
    def stale(self) -> bool:
        return self.reason is not None or bool(self.changed) or bool(self.dropped)


def plan_calibration(
    inputs: Sequence[TagInputs], stored: Mapping[str, TagCalibrationRow],
    library: LibraryCalibration | None, model_id: str, searchable: int, *,
    keep: Sequence[str] = (), force: bool = False,
) -> CalibrationPlan:
    """Compare the stored calibration with the tags and library as they are now. `keep`
    names tags that cannot be scored this time but whose calibration must survive (their
    new prompts could not be encoded)."""
    scorable = [i for i in inputs if i.scorable]
    keys = {i.key for i in scorable}
    dropped = tuple(sorted(k for k in stored if k not in keys and k not in keep))
    reason = None
    if force:
        reason = "asked for"
    elif library is None or library.model_id != model_id:
        reason = "first calibration for this model"
    elif library_drifted(library.photos, searchable):
        reason = (f"the library went from {library.photos} to {searchable} photos "
                  f"(more than {RECALIBRATE_FRACTION:.0%})")
    if reason is not None:
        return CalibrationPlan(reason, tuple(sorted(keys)), dropped)
    changed = tuple(sorted(
        i.key for i in scorable
        if i.key not in stored or stored[i.key].signature != i.signature(model_id)
    ))
    return CalibrationPlan(None, changed, dropped)


def calibrate_library(
    inputs: Sequence[TagInputs], ids: np.ndarray, matrix: np.ndarray, model_id: str
) -> tuple[list[TagCalibrationRow], LibraryCalibration]:
    """Every scorable tag calibrated over the whole library, and the library-wide side."""
    mean = matrix.mean(axis=0).astype(np.float32) if len(matrix) else np.zeros(0, np.float32)
    rows = [i for i in inputs if i.scorable]
    priors = [_prior(i, ids, matrix, mean) for i in rows]
    with_prior = [j for j, p in enumerate(priors) if p is not None]
    pooled = 0.0
    calibrations: dict[int, Calibration] = {}
    if with_prior and len(matrix):
        scores = _sample_scores(matrix, [priors[j] for j in with_prior])
        pooled = pooled_spread(scores)
        cals = calibrate_columns(scores, pooled_scale=pooled, library_size=len(matrix))
        calibrations = dict(zip(with_prior, cals, strict=True))
    library = LibraryCalibration(model_id, len(matrix), pooled, mean)
    return [_row(i, model_id, priors[j], calibrations.get(j), len(matrix))
            for j, i in enumerate(rows)], library


def calibrate_tags(
    inputs: Sequence[TagInputs], ids: np.ndarray, matrix: np.ndarray,
    library: LibraryCalibration, model_id: str,
) -> list[TagCalibrationRow]:
    """Some tags calibrated on their own, exactly as `calibrate_library` would among all the
    others given the same library-wide statistics (pooled spread, mean embedding)."""
    out = []
    for i in inputs:
        prior = _prior(i, ids, matrix, library.mean)
        cal = None
        if prior is not None and len(matrix):
            cal = calibrate_columns(_sample_scores(matrix, [prior]),
                                    pooled_scale=library.pooled_scale,
                                    library_size=len(matrix))[0]
        out.append(_row(i, model_id, prior, cal, len(matrix)))
    return out


def _sample_scores(matrix: np.ndarray, priors: list[np.ndarray]) -> np.ndarray:
    """Raw prior scores of the photos calibration looks at (all, or an even sample)."""
    sample = matrix[calibration_rows(len(matrix))]
    return sample @ np.stack(priors).T


def _prior(i: TagInputs, ids: np.ndarray, matrix: np.ndarray,
           mean: np.ndarray) -> np.ndarray | None:
    pos = matrix[rows_of(ids, i.accepted)]
    neg = matrix[rows_of(ids, i.rejected)]
    center = mean if len(mean) else None
    return prior_vector(i.text, pos, neg, center)


def rows_of(ids: np.ndarray, wanted: Sequence[int]) -> np.ndarray:
    """Row numbers of `wanted` photo ids in the id-sorted `ids` (absent ones left out)."""
    if not len(wanted) or not len(ids):
        return np.zeros(0, dtype=np.int64)
    want = np.asarray(wanted, dtype=np.int64)
    pos = np.clip(np.searchsorted(ids, want), 0, len(ids) - 1)
    return pos[ids[pos] == want]


def _row(i: TagInputs, model_id: str, prior: np.ndarray | None, cal: Calibration | None,
         n: int) -> TagCalibrationRow:
    return TagCalibrationRow(
        i.key, model_id, i.signature(model_id), prior,
        cal.center if cal else None, cal.scale if cal else None, cal.n if cal else n)


@dataclass(frozen=True)
class TagParams:
    """One tag ready to score photos with."""

    tag: TagRow
    prior: np.ndarray | None
    calibration: Calibration | None
    model: StoredTagModel | None
    learned: bool

    @classmethod
    def of(cls, inputs: TagInputs, row: TagCalibrationRow) -> TagParams:
        cal = None
        if row.prior is not None and row.center is not None and row.scale is not None:
            cal = Calibration(float(row.center), float(row.scale), int(row.n))
        return cls(inputs.tag, row.prior, cal, inputs.model, inputs.learned)


class Scorer:
    """Scores photos for a set of tags, one column per tag."""

    def __init__(self, params: Sequence[TagParams]) -> None:
        self.params = list(params)

    @property
    def keys(self) -> list[str]:
        return [p.tag.key for p in self.params]

    def subset(self, keys: Sequence[str]) -> Scorer:
        wanted = set(keys)
        return Scorer([p for p in self.params if p.tag.key in wanted])

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(photos × tags) blended probabilities. Two matrix products read the vectors once
        (the work is memory-bound), then everything else is per-column arithmetic."""
        n, k = len(vectors), len(self.params)
        out = np.zeros((n, k), dtype=np.float32)
        if not n or not k:
            return out
        with_prior = [j for j, p in enumerate(self.params)
                      if p.prior is not None and p.calibration is not None]
        priors: dict[int, np.ndarray] = {}
        if with_prior:
            raw = vectors @ np.stack([self.params[j].prior for j in with_prior]).T
            for col, j in enumerate(with_prior):
                priors[j] = prior_probability(raw[:, col], self.params[j].calibration)
        with_model = [j for j, p in enumerate(self.params) if p.model is not None]
        learned: dict[int, np.ndarray] = {}
        if with_model:
            models = [self.params[j].model for j in with_model]
            raw = vectors @ np.stack([m.weights for m in models]).T
            raw += np.array([m.bias for m in models], dtype=np.float32)
            learned = {j: sigmoid(raw[:, col]) for col, j in enumerate(with_model)}
        for j, p in enumerate(self.params):
            if j not in priors and j not in learned:
                continue  # nothing to go on (an empty library): never suggested
            weight = blend_weight(p.model.positives + p.model.negatives) if p.model else 0.0
            out[:, j] = blend(priors.get(j), learned.get(j), weight)
        return out

    def sources(self) -> list[str]:
        return [SOURCE_LEARNED if p.learned else SOURCE_ZERO_SHOT for p in self.params]

    def thresholds(self) -> np.ndarray:
        return np.array([p.tag.threshold if p.tag.threshold is not None else DEFAULT_THRESHOLD
                         for p in self.params], dtype=np.float32)
