"""The fusion and its coordinate ascent on a hand-computed case (kills mutants of
coursepilot/models/fusion.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import sparse

from coursepilot.models.base import TrainData
from coursepilot.models.fusion import Fusion, tune_fusion

from .fixed_scores import FixedScores


def _data(n_learners: int, n_courses: int) -> TrainData:
    matrix = sparse.csr_matrix((n_learners, n_courses), dtype=np.float32)  # nothing seen
    return TrainData(
        np.array([f"L{i}" for i in range(n_learners)], dtype=object),
        np.array([f"C{j}" for j in range(n_courses)], dtype=object),
        matrix,
        difficulty=np.full(n_courses, -1),
    )


# Two learners, three courses; learner 0 took course 0 on validation, learner 1 course 1.
# a alone ranks course 0 first for both: nDCG (1 + 1/log2 3) / 2. b alone puts course 0 third for learner 0:
# (1/2 + 1) / 2. a + w b: learner 0 scores (1, 0.6w, 0.2 + w), course 0 first iff w < 0.8; learner 1 (1, 0.5 +
# w, 0.5w), course 1 first iff w > 0.5. So on the grid (0, 0.25, 0.75, 2) only a + 0.75 b ranks both right
# (nDCG 1).
A = [[1.0, 0.0, 0.2], [1.0, 0.5, 0.0]]
B = [[0.0, 0.6, 1.0], [0.0, 1.0, 0.5]]
VALID = {0: {0}, 1: {1}}
A_ALONE = (1 + 1 / math.log2(3)) / 2


def test_coordinate_ascent_by_hand():
    components = {"a": FixedScores(A), "b": FixedScores(B)}
    tuning = tune_fusion(components, _data(2, 3), VALID, weights=(0.0, 0.25, 0.75, 2.0))
    assert tuning.singles == pytest.approx({"a": A_ALONE, "b": 0.75})
    assert tuning.weights == {"a": 1.0, "b": 0.75} and tuning.valid_ndcg == pytest.approx(1.0)
    assert tuning.steps == [
        {"component": "a", "weight": 1.0, "valid_ndcg@10": 0.8155},
        {"component": "b", "weight": 0.75, "valid_ndcg@10": 1.0},
    ]
    assert tuning.table() == [
        {"component": "a", "weight": 1.0, "alone_valid_ndcg@10": 0.8155},
        {"component": "b", "weight": 0.75, "alone_valid_ndcg@10": 0.75},
    ]


def test_the_only_component_is_never_dropped_and_a_useless_one_gets_no_weight():
    # b alone is worse and adding it at any grid weight never helps: the ascent keeps a at 1 (its weight 0 is
    # never tried while it is the only one, scaling it changes nothing), b at 0; the table lists b with weight
    # 0.
    useless = [[0.0, 1.0, 0.5], [1.0, 0.0, 0.5]]
    tuning = tune_fusion(
        {"a": FixedScores(A), "b": FixedScores(useless)}, _data(2, 3), VALID, weights=(0.0, 0.25, 1.5)
    )
    assert tuning.weights == {"a": 1.0} and tuning.valid_ndcg == pytest.approx(A_ALONE)
    assert tuning.steps == [{"component": "a", "weight": 1.0, "valid_ndcg@10": 0.8155}]
    # course 0 / 1 third for each learner: 1 / log2 4
    assert tuning.table()[1] == {"component": "b", "weight": 0.0, "alone_valid_ndcg@10": 0.5}


def test_fusion_score_is_the_weighted_sum_of_minmax_parts_and_drops_zero_weights():
    a = FixedScores([[2.0, 4.0, 6.0]])  # min-max: (0, 0.5, 1)
    b = FixedScores([[10.0, 0.0, 5.0]])  # min-max: (1, 0, 0.5)
    c = FixedScores([[1.0, 2.0, 3.0]])
    fusion = Fusion({"a": a, "b": b, "c": c}, {"a": 2, "b": 0.5, "c": 0.0})
    assert fusion.weights == {"a": 2.0, "b": 0.5} and list(fusion.components) == ["a", "b"]
    assert fusion.name == "hybrid" and Fusion({"a": a}, {"a": 1.0}, name="fusion").name == "fusion"
    data = _data(1, 3)
    assert fusion.fit(data) is fusion and a.fitted_on is data and b.fitted_on is data and c.fitted_on is None
    parts = fusion.parts(np.array([0]))
    np.testing.assert_allclose(parts["a"], [[0.0, 1.0, 2.0]]) and np.testing.assert_allclose(
        parts["b"], [[0.5, 0.0, 0.25]]
    )
    assert parts["a"].dtype == np.float32 and parts["b"].dtype == np.float32  # scores are held as float32
    np.testing.assert_allclose(fusion.score(np.array([0])), [[0.5, 1.0, 2.25]])
    other = TrainData(data.learner_ids, data.course_ids, data.matrix)
    Fusion({"a": a}, {"a": 1.0}).fit(other, fit_parts=False)
    assert a.fitted_on is data  # fit_parts=False leaves the components as fitted
