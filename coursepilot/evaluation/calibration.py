"""Ranking scores mapped to the rating scale, so ranking models get the first paper's Table 3 errors (MAE,
MSE).

A ranking model's score orders courses but is not a rating. Per model, an isotonic regression (monotone, so
the order is kept; clipped to the rating scale) is fitted from the score of each validation pair (a model
fitted on training minus the validation carve, scoring the carve's rated interactions) to its rating; the
model fitted on all of training then scores each rated test pair and the fitted map turns the score into a
predicted rating.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression

from ..models.base import Recommender, scoring_batch
from ..models.ratings import rating_errors


def pair_scores(
    models: dict[str, Recommender], rows: np.ndarray, cols: np.ndarray, batch: int | None = None
) -> dict[str, np.ndarray]:
    """Each model's score of each (learner row, course column) pair, scoring each learner once per model (and
    each part of a fusion once)."""
    learners, at = np.unique(rows, return_inverse=True)
    batch = scoring_batch(models, batch)
    out = {name: np.empty(len(rows)) for name in models}
    order = np.argsort(at, kind="stable")  # each batch's pairs are one slice of it
    bounds = np.searchsorted(at[order], np.arange(0, len(learners) + batch, batch))
    for number, start in enumerate(range(0, len(learners), batch)):
        part, memo = order[bounds[number] : bounds[number + 1]], {}
        for name, model in models.items():
            scores = np.asarray(model.scored(learners[start : start + batch], memo), dtype=float)
            out[name][part] = scores[at[part] - start, cols[part]]
    return out


def calibrated_errors(
    valid_models: dict[str, Recommender],
    valid_pairs: tuple,
    test_models: dict[str, Recommender],
    test_pairs: tuple,
    scale: tuple[float, float],
) -> dict[str, dict[str, float]]:
    """{model: MAE, MSE} on the test pairs of each model in both dicts; pairs are (rows, cols, ratings)
    arrays."""
    (valid_rows, valid_cols, valid_ratings), (test_rows, test_cols, test_ratings) = valid_pairs, test_pairs
    if len(np.unique(valid_ratings)) < 2 or not len(test_ratings):
        return {}
    names = sorted(valid_models.keys() & test_models.keys())
    valid = pair_scores({name: valid_models[name] for name in names}, valid_rows, valid_cols)
    test = pair_scores({name: test_models[name] for name in names}, test_rows, test_cols)
    out = {}
    for name in names:
        calibration = IsotonicRegression(y_min=scale[0], y_max=scale[1], out_of_bounds="clip")
        calibration.fit(_finite(valid[name]), valid_ratings)
        out[name] = rating_errors(test_ratings, calibration.predict(_finite(test[name])))
    return out


def _finite(scores: np.ndarray) -> np.ndarray:
    """Scores with -inf / NaN (a course a model cannot score) set below every finite score."""
    finite = np.isfinite(scores)
    low = scores[finite].min() - 1 if finite.any() else 0.0
    return np.where(finite, scores, low)
