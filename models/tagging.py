"""Tag scoring: from embeddings to "suggest this tag?", and learning from reviewed photos.

Pure maths on numpy arrays (scikit-learn is imported only to train a classifier), so every
rule here can be tested on synthetic vectors and reused by the benchmark unchanged.

How a photo's probability for a tag is made
-------------------------------------------
1. **Prior vector.** A tag's prompts form a *prompt ensemble*: each prompt embedding is
   L2-normalised, the mean is taken and normalised again (`tag_text_vector`). Reviewed
   photos move that vector by Rocchio's relevance-feedback rule (`prior_vector`):
   ``text + mean(accepted) - 0.5 * mean(rejected)``, the photo means taken relative to the
   library's mean embedding, normalised; a tag defined only by example photos is the same
   without the text term. So a rejection counts even before anything was accepted.
   Its cosine with a photo is the raw prior score.
2. **Calibration, per tag.** Raw cosines are not comparable between tags: one prompt set
   sits at 0.28 on every photo, another at 0.19, so a single global cut-off would flood one
   tag and silence another. Each tag is therefore judged against its own score distribution
   over the library: ``z = (cosine - median) / (1.4826 * MAD)``, a robust z-score (median and
   median absolute deviation ignore the few photos that really show the tag). While the
   library is small the spread (MAD) is shrunk toward the spread pooled over all tags,
   weighted ``n / (n + CALIBRATION_PRIOR_N)``; the median always stays the tag's own, since
   pooling it would hand back the baseline differences the z-score removes. The prior
   probability is
   ``sigmoid((z - Z_SUGGEST) / Z_TEMPERATURE)``: 0.5 exactly at ``Z_SUGGEST`` standard
   deviations above the tag's typical photo.
3. **Learned classifier.** From the first accepted photo on (``MIN_POSITIVES``; negatives
   are rejected photos and the unlabelled background), a logistic regression is
   trained on the embeddings: accepted photos are positives, rejected ones negatives, and a
   sample of other library photos weak negatives (weight ``BACKGROUND_WEIGHT``, since a few
   of them may show the tag unlabelled). Classes are balanced by weight, so its probability
   reads "closer to the accepted than to the rest" whatever the tag's frequency.
4. **Blend.** While examples are few the classifier is noisy and the prior knows more, so
   the two are mixed in log-odds: ``logit p = λ·logit p_learned + (1 - λ)·logit p_prior`` with
   ``λ = n / (n + BLEND_K0)``, n the number of reviewed photos (accepted + rejected). With
   8 reviews λ = 0.5; with 40, 0.83. A tag without prior uses the classifier alone.
5. **Suggest** when the probability is at least the tag's threshold (``DEFAULT_THRESHOLD``
   unless the user set one), keeping at most ``MAX_PER_PHOTO`` tags per photo: those that
   clear their threshold by the widest margin.

Known limit: the per-tag z-score is relative to the library, so a tag that fits most photos
of a library (a library of nothing but documents) looks ordinary to the prior. Reviews fix
that: accepted and rejected photos train the classifier, which does not depend on base rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z_SUGGEST = 2.0
Z_TEMPERATURE = 1.0
CALIBRATION_PRIOR_N = 30
CALIBRATION_SAMPLE = 20_000
MIN_SCALE = 1e-3
DEFAULT_THRESHOLD = 0.5
MAX_PER_PHOTO = 5
BLEND_K0 = 8.0
MIN_POSITIVES = 1
RECALIBRATE_FRACTION = 0.10
BACKGROUND_WEIGHT = 0.2
REGULARISATION_C = 0.5
ROCCHIO_TEXT_WEIGHT = 1.0
ROCCHIO_POSITIVE_WEIGHT = 1.0
ROCCHIO_NEGATIVE_WEIGHT = 0.5
_EPS = 1e-6


# ------------------------------------------------------------------ vectors
def normalise(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows (or one vector); zero rows stay zero instead of becoming NaN."""
    arr = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    return (arr / np.maximum(norms, 1e-12)).astype(np.float32)


def tag_text_vector(prompt_vectors: np.ndarray) -> np.ndarray:
    """A tag's prompt ensemble: mean of the normalised prompt embeddings, renormalised."""
    rows = np.atleast_2d(np.asarray(prompt_vectors, dtype=np.float32))
    if rows.shape[0] == 0:
        raise ValueError("a prompt ensemble needs at least one prompt embedding")
    return normalise(normalise(rows).mean(axis=0))


def prior_vector(
    text: np.ndarray | None,
    positives: np.ndarray | None = None,
    negatives: np.ndarray | None = None,
    center: np.ndarray | None = None,
) -> np.ndarray | None:
    """Rocchio's rule: the tag's text vector (if any), plus the mean of its accepted
    photos, minus half the mean of its rejected ones, normalised. None when there is
    neither text nor an accepted photo: rejections alone do not say what a tag is.

    Photo terms are taken relative to `center` (the library's mean embedding): CLIP image
    embeddings share a large common direction, and without centring, "away from these
    rejected photos" would mostly mean "away from ordinary-looking photos".
    """
    has_pos = positives is not None and len(positives) > 0
    if text is None and not has_pos:
        return None
    dim = len(text) if text is not None else np.asarray(positives).shape[-1]
    mean = np.zeros(dim, dtype=np.float32) if center is None else np.asarray(center, np.float32)
    query = np.zeros(dim, dtype=np.float32)
    if text is not None:
        query += ROCCHIO_TEXT_WEIGHT * normalise(text)
    if has_pos:
        query += ROCCHIO_POSITIVE_WEIGHT * (normalise(np.atleast_2d(positives)).mean(0) - mean)
    if negatives is not None and len(negatives):
        query -= ROCCHIO_NEGATIVE_WEIGHT * (normalise(np.atleast_2d(negatives)).mean(0) - mean)
    return normalise(query)


def rank_like(
    examples: np.ndarray, candidates: np.ndarray, negatives: np.ndarray | None = None,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Scores of candidates (higher is more alike) for "more like these" examples.

    With a background (a sample of other library photos) this is the decision value of the
    classifier a tag would learn from these examples (`train_tag_model`), the better ranker
    in our tests; without one, the cosine with the examples' Rocchio vector.
    """
    if len(examples) == 0:
        raise ValueError("'more like these' needs at least one example")
    cand = np.asarray(candidates, dtype=np.float32)
    has_neg = negatives is not None and len(negatives) > 0
    if (background is not None and len(background)) or has_neg:
        return train_tag_model(examples, negatives, background).decision(cand)
    vector = prior_vector(None, examples, negatives)
    assert vector is not None
    return cand @ vector


# -------------------------------------------------------------- calibration
@dataclass(frozen=True)
class Calibration:
    """Where a tag's scores usually sit over the library (`center`) and how far they
    spread (`scale`), measured on `n` photos."""

    center: float
    scale: float
    n: int

    def z(self, scores: np.ndarray) -> np.ndarray:
        return (np.asarray(scores, dtype=np.float32) - self.center) / self.scale


def _robust(scores: np.ndarray) -> tuple[float, float]:
    median = float(np.median(scores))
    return median, float(1.4826 * np.median(np.abs(scores - median)))


def calibration_rows(n: int) -> np.ndarray:
    """Which of n photos (in id order) calibration looks at: all of them, or an evenly
    spread sample above CALIBRATION_SAMPLE — medians of the sample are as good and cost a
    fraction at 100k photos. Callers holding only some rows score just these."""
    if n > CALIBRATION_SAMPLE:
        return np.linspace(0, n - 1, CALIBRATION_SAMPLE).astype(np.int64)
    return np.arange(n, dtype=np.int64)


def pooled_spread(scores: np.ndarray) -> float:
    """The robust spread of every score around its own tag's median, pooled over all tags
    of an (n photos × k tags) matrix: what a tag's spread is shrunk toward while the library
    is small. A library-level statistic, so it is kept with the library's calibration and
    one tag can be recalibrated alone against it."""
    matrix = _calibration_sample(scores)
    if not matrix.size:
        return 0.0
    return _robust((matrix - np.median(matrix, axis=0)).ravel())[1]


def _calibration_sample(scores: np.ndarray) -> np.ndarray:
    matrix = np.asarray(scores, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError("expected a 2-D (photos × tags) score matrix")
    if len(matrix) > CALIBRATION_SAMPLE:
        matrix = matrix[calibration_rows(len(matrix))]
    return matrix


def calibrate_columns(
    scores: np.ndarray, prior_n: int = CALIBRATION_PRIOR_N, *,
    pooled_scale: float | None = None, library_size: int | None = None,
) -> list[Calibration]:
    """One Calibration per column of an (n photos × k tags) score matrix.

    Each tag's spread is shrunk toward the spread pooled over all tags while the library is
    small, so three photos do not decide how far "unusual" is for a tag. `pooled_scale`
    (from `pooled_spread` over every tag) lets a few columns be calibrated on their own
    exactly as they would be among all the others. `library_size` says how many photos the
    rows stand for when they are only the `calibration_rows` sample of a larger library.
    """
    matrix = _calibration_sample(scores)
    n = int(library_size) if library_size is not None else len(np.asarray(scores))
    k = matrix.shape[1]
    if n == 0:
        return [Calibration(0.0, 1.0, 0) for _ in range(k)]
    if pooled_scale is None:
        pooled_scale = pooled_spread(matrix)
    weight = n / (n + prior_n)
    result = []
    for column in matrix.T:
        center, scale = _robust(column)
        scale = weight * scale + (1 - weight) * pooled_scale
        result.append(Calibration(center, max(scale, MIN_SCALE), n))
    return result


def library_drifted(
    calibrated_on: int, searchable_now: int, fraction: float = RECALIBRATE_FRACTION
) -> bool:
    """Whether the library moved far enough from the size its calibration was measured on
    that the medians and spreads may have moved: a few new photos among thousands leave
    them where they were, so scoring them against the stored calibration gives the same
    suggestions a full pass would, at the cost of reading only those photos."""
    return abs(searchable_now - calibrated_on) > fraction * max(calibrated_on, 1)


def prior_probability(scores: np.ndarray, calibration: Calibration) -> np.ndarray:
    """Calibrated prior probability from raw cosines (see the module docstring, step 2)."""
    return sigmoid((calibration.z(scores) - Z_SUGGEST) / Z_TEMPERATURE)


# --------------------------------------------------------------- classifier
def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -40, 40)))).astype(
        np.float32
    )


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


@dataclass(frozen=True)
class LinearTagModel:
    """A trained per-tag classifier, folded so it applies to raw normalised embeddings."""

    weights: np.ndarray
    bias: float
    positives: int
    negatives: int

    def decision(self, vectors: np.ndarray) -> np.ndarray:
        return np.asarray(vectors, dtype=np.float32) @ self.weights + self.bias

    def probability(self, vectors: np.ndarray) -> np.ndarray:
        return sigmoid(self.decision(vectors))


def train_tag_model(
    positives: np.ndarray,
    negatives: np.ndarray | None = None,
    background: np.ndarray | None = None,
    *,
    background_weight: float = BACKGROUND_WEIGHT,
    c: float = REGULARISATION_C,
) -> LinearTagModel:
    """Class-balanced logistic regression: accepted photos vs rejected ones, with the
    unlabelled background as weak negatives.

    Features are centred on the background (or training) mean and scaled to unit average
    variance, the usual preparation for a linear probe on CLIP embeddings (they share a
    large common component); the scaling is folded back into the returned weights.
    """
    from sklearn.linear_model import LogisticRegression

    dim = np.asarray(positives).shape[-1]
    pos = np.asarray(positives, dtype=np.float32).reshape(-1, dim)
    neg = _rows(negatives, dim)
    bg = _rows(background, dim)
    if len(pos) == 0 or len(neg) + len(bg) == 0:
        raise ValueError("training needs at least one positive and one negative example")
    x = np.vstack([pos, neg, bg])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg) + len(bg))])
    w = np.concatenate([np.ones(len(pos)), np.ones(len(neg)),
                        np.full(len(bg), background_weight)])
    total = w.sum()
    w[y == 1] *= (total / 2) / w[y == 1].sum()
    w[y == 0] *= (total / 2) / w[y == 0].sum()
    mean = (bg if len(bg) else x).mean(axis=0)
    scale = float(np.sqrt(((x - mean) ** 2).mean())) or 1.0
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit((x - mean) / scale, y, sample_weight=w)
    weights = (clf.coef_[0] / scale).astype(np.float32)
    bias = float(clf.intercept_[0] - weights @ mean)
    return LinearTagModel(weights, bias, positives=len(pos), negatives=len(neg))


def _rows(arr: np.ndarray | None, dim: int) -> np.ndarray:
    if arr is None:
        return np.zeros((0, dim), dtype=np.float32)
    return np.asarray(arr, dtype=np.float32).reshape(-1, dim)


# --------------------------------------------------------------------- blend
def blend_weight(reviewed: int, k0: float = BLEND_K0) -> float:
    """How much the learned classifier counts, from the number of reviewed photos."""
    return reviewed / (reviewed + k0) if reviewed > 0 else 0.0


def blend(prior: np.ndarray | None, learned: np.ndarray | None, weight: float) -> np.ndarray:
    """Mix the prior and the learned probability in log-odds (step 4)."""
    if prior is None and learned is None:
        raise ValueError("nothing to blend: neither a prior nor a learned probability")
    if learned is None:
        return np.asarray(prior, dtype=np.float32)
    if prior is None:
        return np.asarray(learned, dtype=np.float32)
    return sigmoid(weight * logit(learned) + (1 - weight) * logit(prior))


def select_suggestions(
    probabilities: np.ndarray, thresholds: np.ndarray, max_per_photo: int = MAX_PER_PHOTO
) -> np.ndarray:
    """Boolean (photos × tags) mask: above the tag's threshold and among the photo's
    `max_per_photo` tags that clear their threshold by the widest margin (in log-odds, so a
    tag whose user lowered its threshold is suggested generously, as asked)."""
    p = np.asarray(probabilities, dtype=np.float32)
    thr = np.asarray(thresholds, dtype=np.float32)[None, :]
    mask = p >= thr
    if p.shape[1] > max_per_photo:
        order = np.argsort(-(logit(p) - logit(thr)), axis=1, kind="stable")
        top = np.zeros_like(mask)
        np.put_along_axis(top, order[:, :max_per_photo], True, axis=1)
        mask &= top
    return mask


def precision_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of true labels among the k highest scores (ties broken by position)."""
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return float(np.asarray(labels, dtype=bool)[order].mean()) if len(order) else 0.0
