"""Tag scoring maths on synthetic vectors: prompt ensembles, per-tag calibration, the
learned classifier and its blend with the zero-shot prior, "more like these"."""

from __future__ import annotations

import numpy as np
import pytest

from models.tagging import (
    MIN_SCALE,
    Z_SUGGEST,
    Calibration,
    blend,
    blend_weight,
    calibrate_columns,
    calibration_rows,
    library_drifted,
    normalise,
    pooled_spread,
    precision_at_k,
    prior_probability,
    prior_vector,
    rank_like,
    select_suggestions,
    tag_text_vector,
    train_tag_model,
)

DIM = 32


def clusters(n_per: int, k: int, seed: int, spread: float = 0.12):
    """Unit vectors around k random centres sharing a common direction, like CLIP's."""
    rng = np.random.default_rng(seed)
    common = normalise(rng.normal(size=DIM)) * 2.0
    centres = normalise(rng.normal(size=(k, DIM)))
    x = np.vstack([common + centres[c] + spread * rng.normal(size=(n_per, DIM)) for c in range(k)])
    y = np.repeat(np.arange(k), n_per)
    return normalise(x), y


def test_prompt_ensemble_is_the_normalised_mean_of_normalised_prompts():
    a, b = np.array([3.0, 0, 0]), np.array([0, 0.5, 0])
    vector = tag_text_vector(np.stack([a, b]))
    assert np.allclose(vector, normalise(np.array([1.0, 1.0, 0])))
    assert np.allclose(tag_text_vector(a[None]), [1, 0, 0])
    assert np.allclose(tag_text_vector(np.stack([b, a])), vector)
    with pytest.raises(ValueError):
        tag_text_vector(np.zeros((0, 3)))


def test_calibration_judges_each_tag_against_its_own_distribution():
    # Tag A sits around 0.28 on every photo, tag B around 0.19; photo 0 stands out for both.
    rng = np.random.default_rng(0)
    scores = np.column_stack([0.28 + 0.01 * rng.normal(size=200),
                              0.19 + 0.01 * rng.normal(size=200)]).astype(np.float32)
    scores[0] += 0.06
    cal_a, cal_b = calibrate_columns(scores)
    p_a, p_b = prior_probability(scores[:, 0], cal_a), prior_probability(scores[:, 1], cal_b)
    assert p_a[0] > 0.9 and p_b[0] > 0.9
    assert (p_a[1:] > 0.5).mean() < 0.05 and (p_b[1:] > 0.5).mean() < 0.05
    # One global cosine cut-off cannot do this: whatever lets B's outlier through floods A.
    cut = scores[0, 1]
    assert (scores[1:, 0] >= cut).all()


def test_calibration_shrinks_the_spread_of_a_tiny_library_toward_the_pooled_one():
    scores = np.array([[0.30, 0.10], [0.30, 0.20], [0.31, 0.30]], dtype=np.float32)
    cal_a, cal_b = calibrate_columns(scores)
    assert cal_a.center == pytest.approx(0.30) and cal_b.center == pytest.approx(0.20)
    assert cal_a.scale > MIN_SCALE  # its own MAD is 0: the pooled spread keeps it sane
    assert cal_a.n == 3
    assert calibrate_columns(np.zeros((0, 2)))[0].n == 0


def test_one_column_calibrated_alone_against_the_pooled_spread_matches_all_together():
    rng = np.random.default_rng(1)
    scores = (rng.normal(size=(50, 4)) * [0.01, 0.02, 0.03, 0.01] + [0.2, 0.3, 0.25, 0.1])
    together = calibrate_columns(scores)
    pooled = pooled_spread(scores)
    for j in range(4):
        alone = calibrate_columns(scores[:, [j]], pooled_scale=pooled)[0]
        assert alone == pytest.approx(together[j])
    big = np.repeat(scores, 500, axis=0)  # 25,000 photos: calibration reads a sample
    sample = calibration_rows(len(big))
    assert len(sample) < len(big)
    assert calibrate_columns(big[sample], library_size=len(big)) == calibrate_columns(big)


def test_the_library_must_move_more_than_a_tenth_to_need_recalibration():
    assert not library_drifted(1000, 1100) and not library_drifted(1000, 900)
    assert library_drifted(1000, 1101) and library_drifted(1000, 899)
    assert library_drifted(0, 5)


def test_prior_probability_is_one_half_at_the_suggestion_z():
    cal = Calibration(center=0.2, scale=0.01, n=100)
    assert prior_probability(np.array([0.2 + Z_SUGGEST * 0.01]), cal)[0] == pytest.approx(0.5)
    assert prior_probability(np.array([0.2]), cal)[0] < 0.2


def test_suggestions_respect_thresholds_and_a_cap_per_photo():
    p = np.array([[0.9, 0.8, 0.7, 0.2], [0.4, 0.6, 0.95, 0.55]], dtype=np.float32)
    mask = select_suggestions(p, np.array([0.5, 0.5, 0.5, 0.6]), max_per_photo=2)
    assert mask.tolist() == [[True, True, False, False], [False, True, True, False]]
    # A tag whose threshold was lowered wins a place: its margin is the widest.
    mask = select_suggestions(p, np.array([0.5, 0.5, 0.5, 0.01]), max_per_photo=2)
    assert mask.tolist() == [[True, False, False, True], [False, False, True, True]]


def test_blend_moves_from_prior_to_learned_as_reviews_accumulate():
    prior, learned = np.array([0.9, 0.1]), np.array([0.1, 0.9])
    assert np.allclose(blend(prior, learned, 0.0), prior, atol=1e-6)
    assert np.allclose(blend(prior, learned, 1.0), learned, atol=1e-6)
    assert np.allclose(blend(None, learned, 0.3), learned)
    assert np.allclose(blend(prior, None, 0.3), prior)
    weights = [blend_weight(n) for n in (0, 2, 8, 40, 400)]
    assert weights[0] == 0 and weights == sorted(weights) and weights[-1] < 1
    assert blend_weight(8) == pytest.approx(0.5)


def test_classifier_is_class_balanced_so_a_few_positives_are_enough():
    # 3 accepted photos against 150 unlabelled ones — some of which show the tag too.
    x, y = clusters(60, 4, seed=1)
    rng = np.random.default_rng(1)
    pos = rng.choice(np.flatnonzero(y == 0), 3, replace=False)
    rest = rng.permutation(np.setdiff1d(np.arange(len(y)), pos))
    model = train_tag_model(x[pos], None, x[rest[:150]])
    prob = model.probability(x[rest])
    labels = y[rest] == 0
    assert precision_at_k(prob, labels, 20) >= 0.9
    suggested = prob > 0.5
    assert suggested.sum() >= 5 and labels[suggested].mean() >= 0.9
    assert model.positives == 3 and model.negatives == 0
    with pytest.raises(ValueError):
        train_tag_model(x[pos])


def test_learned_tagger_beats_a_misleading_zero_shot_prior_on_held_out_vectors():
    x, y = clusters(50, 5, seed=2)
    rng = np.random.default_rng(2)
    held = rng.permutation(len(y))[:100]
    pool = np.setdiff1d(np.arange(len(y)), held)
    gains = []
    for tag in range(5):
        text = normalise(rng.normal(size=DIM))  # a prompt that means nothing here
        zero_shot = x[held] @ text
        reviewed = rng.choice(pool, 24, replace=False)
        pos, neg = reviewed[y[reviewed] == tag], reviewed[y[reviewed] != tag]
        if len(pos) < 2:
            pos = np.concatenate([pos, pool[y[pool] == tag][:2]])
        model = train_tag_model(x[pos], x[neg], x[np.setdiff1d(pool, reviewed)])
        learned = blend(prior_probability(zero_shot, calibrate_columns(zero_shot[:, None])[0]),
                        model.probability(x[held]), blend_weight(len(pos) + len(neg)))
        labels = y[held] == tag
        gains.append(precision_at_k(learned, labels, 10) - precision_at_k(zero_shot, labels, 10))
    assert np.mean(gains) >= 0.4


def test_rocchio_prior_follows_reviews_and_needs_text_or_an_example():
    x, y = clusters(40, 3, seed=3)
    centre = x.mean(axis=0)
    text = normalise(np.random.default_rng(3).normal(size=DIM))
    assert prior_vector(None, None, x[:3]) is None
    moved = prior_vector(text, x[y == 1][:4], x[y == 2][:4], centre)
    assert precision_at_k(x @ moved, y == 1, 20) > precision_at_k(x @ text, y == 1, 20)
    assert np.linalg.norm(moved) == pytest.approx(1.0, abs=1e-5)


def test_more_like_these_ranks_the_examples_kind_first():
    x, y = clusters(40, 4, seed=4)
    examples = np.flatnonzero(y == 2)[:2]
    others = np.setdiff1d(np.arange(len(y)), examples)
    scores = rank_like(x[examples], x[others], background=x[others][::2])
    assert precision_at_k(scores, y[others] == 2, 20) >= 0.9
    by_vector = rank_like(x[examples], x[others])  # no background: the Rocchio vector
    assert precision_at_k(by_vector, y[others] == 2, 20) >= 0.9
    with pytest.raises(ValueError):
        rank_like(x[:0], x)


def test_precision_at_k():
    assert precision_at_k(np.array([0.9, 0.1, 0.8, 0.3]), np.array([1, 0, 0, 1]), 2) == 0.5
