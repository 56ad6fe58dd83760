"""The stored-calibration rules on synthetic vectors: when a calibration still holds, and
that recalibrating one tag alone gives what calibrating all of them together gives."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.tag_calibration import (
    Scorer,
    TagInputs,
    TagParams,
    calibrate_library,
    calibrate_tags,
    plan_calibration,
    rows_of,
)
from indexer.tag_records import StoredTagModel, TagRow
from models.tagging import normalise

MODEL = "test-model"
DIM = 16


def tag(key: str, threshold: float | None = None) -> TagRow:
    return TagRow(key, key, key, (f"a photo of {key}",), "builtin", False, threshold, "")


@pytest.fixture
def library():
    rng = np.random.default_rng(0)
    ids = np.arange(1, 301, dtype=np.int64) * 3  # gaps, as after deletions
    matrix = normalise(rng.normal(size=(300, DIM)) + 2.0 * normalise(rng.normal(size=DIM)))
    texts = normalise(rng.normal(size=(3, DIM)))
    model = StoredTagModel("c", MODEL, rng.normal(size=DIM).astype(np.float32), -1.0, 2, 1, "")
    inputs = [
        TagInputs(tag("a"), texts[0], (), (), None),
        TagInputs(tag("b", 0.3), texts[1], (int(ids[5]), int(ids[9])), (int(ids[2]),), None),
        TagInputs(tag("c"), None, (int(ids[7]),), (), model),
        TagInputs(tag("d"), None, (), (int(ids[1]),), None),  # rejections only: unscorable
    ]
    return ids, matrix, inputs


def test_one_tag_recalibrated_alone_matches_a_full_calibration(library):
    ids, matrix, inputs = library
    rows, lib = calibrate_library(inputs, ids, matrix, MODEL)
    assert [r.tag_key for r in rows] == ["a", "b", "c"] and lib.photos == 300
    alone = {r.tag_key: r for r in calibrate_tags(inputs[1:3], ids, matrix, lib, MODEL)}
    for row in rows[1:]:
        other = alone[row.tag_key]
        assert other.signature == row.signature
        assert np.allclose(other.prior, row.prior, atol=1e-6)
        assert other.center == pytest.approx(row.center, abs=1e-6)
        assert other.scale == pytest.approx(row.scale, abs=1e-6)


def test_a_stored_calibration_scores_a_few_photos_as_it_scores_all(library):
    ids, matrix, inputs = library
    rows, _lib = calibrate_library(inputs, ids, matrix, MODEL)
    by_key = {r.tag_key: r for r in rows}
    scorer = Scorer([TagParams.of(i, by_key[i.key]) for i in inputs if i.scorable])
    everything = scorer.probabilities(matrix)
    assert np.allclose(scorer.probabilities(matrix[[4, 100, 299]]), everything[[4, 100, 299]],
                       atol=1e-6)
    assert scorer.sources() == ["zero-shot", "learned", "learned"]
    assert scorer.subset(["c"]).keys == ["c"]


def test_plan_says_what_moved(library):
    ids, matrix, inputs = library
    rows, lib = calibrate_library(inputs, ids, matrix, MODEL)
    stored = {r.tag_key: r for r in rows}

    fresh = plan_calibration(inputs, stored, lib, MODEL, 320)  # +7%: still holds
    assert not fresh.stale
    grown = plan_calibration(inputs, stored, lib, MODEL, 331)  # +10.3%
    assert "from 300 to 331 photos" in grown.reason
    assert plan_calibration(inputs, stored, None, MODEL, 300).reason
    assert plan_calibration(inputs, stored, lib, "other-model", 300).reason
    assert plan_calibration(inputs, stored, lib, MODEL, 300, force=True).reason

    reviewed = list(inputs)
    reviewed[0] = TagInputs(tag("a"), inputs[0].text, (int(ids[3]),), (), None)
    plan = plan_calibration(reviewed, stored, lib, MODEL, 300)
    assert (plan.reason, plan.changed, plan.dropped) == (None, ("a",), ())

    retired = [i for i in inputs if i.key != "b"]
    assert plan_calibration(retired, stored, lib, MODEL, 300).dropped == ("b",)
    assert not plan_calibration(retired, stored, lib, MODEL, 300, keep=["b"]).stale


def test_rows_of_finds_ids_in_the_sorted_matrix_and_skips_absent_ones():
    ids = np.array([2, 5, 9, 12], dtype=np.int64)
    assert rows_of(ids, [9, 2, 7, 13, 12]).tolist() == [2, 0, 3]
    assert rows_of(ids, []).tolist() == []
    assert rows_of(np.zeros(0, dtype=np.int64), [1]).tolist() == []
