"""Ranking scores mapped to ratings (Table 3 for ranking models)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from coursepilot.evaluation.calibration import calibrated_errors, pair_scores
from coursepilot.models.base import TrainData
from coursepilot.models.item_based import EASE
from coursepilot.models.simple import Popularity


def _data(n_learners: int = 40, n_courses: int = 6, seed: int = 0) -> TrainData:
    # course c is taken by a share of learners that falls with c: popularity ranks the courses 0, 1, 2, ...
    rng = np.random.default_rng(seed)
    taken = rng.random((n_learners, n_courses)) < np.linspace(0.9, 0.1, n_courses)
    return TrainData(
        np.arange(n_learners).astype(str).astype(object),
        np.arange(n_courses).astype(str).astype(object),
        sparse.csr_matrix(taken.astype(np.float32)),
        difficulty=np.full(n_courses, -1),
    )


def test_pair_scores_are_the_models_scores_at_each_pair():
    model = EASE(10.0).fit(_data())
    rows, cols = np.array([5, 1, 5, 30, 1]), np.array([0, 3, 2, 5, 3])
    scores = pair_scores({"ease": model}, rows, cols, batch=2)["ease"]
    np.testing.assert_allclose(scores, model.score(rows)[np.arange(5), cols])


def test_a_score_ordered_like_the_ratings_predicts_them_exactly_and_a_flat_one_predicts_their_mean():
    data = _data()
    model = Popularity().fit(data)
    rating = {c: 5.0 - c * 0.8 for c in range(6)}  # the more popular, the better rated
    rng = np.random.default_rng(1)
    valid_rows, valid_cols = rng.integers(0, 40, 200), np.tile(np.arange(6), 34)[:200]
    test_rows, test_cols = rng.integers(0, 40, 50), rng.integers(0, 6, 50)
    pairs = lambda rows, cols: (rows, cols, np.array([rating[c] for c in cols]))  # noqa: E731
    errors = calibrated_errors(
        {"popularity": model},
        pairs(valid_rows, valid_cols),
        {"popularity": model},
        pairs(test_rows, test_cols),
        (1.0, 5.0),
    )
    assert errors["popularity"] == pytest.approx({"mae": 0.0, "mse": 0.0}, abs=1e-9)
    flat = Popularity().fit(data.with_matrix(sparse.csr_matrix(np.ones((40, 6), dtype=np.float32))))
    errors = calibrated_errors(
        {"flat": flat}, pairs(valid_rows, valid_cols), {"flat": flat}, pairs(test_rows, test_cols), (1.0, 5.0)
    )
    mean = np.mean([rating[c] for c in valid_cols])
    truth = np.array([rating[c] for c in test_cols])
    assert errors["flat"]["mae"] == pytest.approx(np.abs(truth - mean).mean())
    # one rating value: nothing to map
    assert (
        calibrated_errors(
            {"flat": flat},
            (valid_rows, valid_cols, np.full(200, 3.0)),
            {"flat": flat},
            pairs(test_rows, test_cols),
            (1.0, 5.0),
        )
        == {}
    )
