"""Rating prediction where a source has explicit ratings, scored by MAE and MSE on the test split.

- ``global_mean``: the mean training rating;
- ``biases``: mu + b_u + b_i, regularised (lambda) and fitted by a few alternating passes;
- ``user_knn_rating``: the second paper's equation (9) on mean-centred ratings,
  r̂_ui = mu_u + Σ_v sim(u, v) (r_vi - mu_v) / Σ_v |sim(u, v)| over the ``neighbours`` most similar
  learners who rated i (sim = cosine of rating rows, eq. 8); ``biases`` where no neighbour rated i.
Predictions are clipped to the source's rating scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from ..learner_neighbours import LearnerNeighbours


def _codes(frame: pd.DataFrame, learners: pd.Index, courses: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    return learners.get_indexer(frame["learner_id"]), courses.get_indexer(frame["course_id"])


class RatingModels:
    """Fit on training ratings; ``predict(name, test)`` for each of ``NAMES``."""

    NAMES = ("global_mean", "biases", "user_knn_rating")

    def __init__(
        self, scale: tuple[float, float], regularisation: float = 5.0, neighbours: int = 50, passes: int = 5
    ):
        self.scale, self.reg, self.neighbours, self.passes = scale, regularisation, neighbours, passes

    def fit(self, train: pd.DataFrame) -> "RatingModels":
        train = train.dropna(subset=["rating"])
        if train.empty:
            raise ValueError("no training interaction has a rating")
        self.learners, self.courses = (
            pd.Index(train["learner_id"].unique()),
            pd.Index(train["course_id"].unique()),
        )
        u, i = _codes(train, self.learners, self.courses)
        r = train["rating"].to_numpy(float)
        self.mu = float(r.mean())
        self.bu, self.bi = np.zeros(len(self.learners)), np.zeros(len(self.courses))
        for _ in range(self.passes):
            self.bi = np.bincount(i, r - self.mu - self.bu[u], len(self.courses)) / (
                np.bincount(i, minlength=len(self.courses)) + self.reg
            )
            self.bu = np.bincount(u, r - self.mu - self.bi[i], len(self.learners)) / (
                np.bincount(u, minlength=len(self.learners)) + self.reg
            )
        self.user_mean = np.bincount(u, r, len(self.learners)) / np.maximum(
            np.bincount(u, minlength=len(self.learners)), 1
        )
        shape = (len(self.learners), len(self.courses))
        self.centred = sparse.csr_matrix((r - self.user_mean[u], (u, i)), shape=shape)
        self.rated = sparse.csr_matrix((np.ones(len(r)), (u, i)), shape=shape)
        self.index = LearnerNeighbours(sparse.csr_matrix((r, (u, i)), shape=shape), self.neighbours)
        return self

    def _biases(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return (
            self.mu
            + np.where(u >= 0, self.bu[np.maximum(u, 0)], 0)
            + np.where(i >= 0, self.bi[np.maximum(i, 0)], 0)
        )

    def _knn(self, u: np.ndarray, i: np.ndarray, batch: int = 1024) -> np.ndarray:
        out = self._biases(u, i)
        known = np.flatnonzero((u >= 0) & (i >= 0))
        rows = np.unique(u[known])
        for start in range(0, len(rows), batch):
            block = rows[start : start + batch]
            weights = self.index.weights(block)
            numerator, denominator = (weights @ self.centred).toarray(), (abs(weights) @ self.rated).toarray()
            where = np.flatnonzero(np.isin(u, block) & (i >= 0))
            pos = np.searchsorted(block, u[where])
            num, den = numerator[pos, i[where]], denominator[pos, i[where]]
            has = den > 0
            out[where[has]] = self.user_mean[u[where[has]]] + num[has] / den[has]
        return out

    def predict(self, name: str, frame: pd.DataFrame) -> np.ndarray:
        u, i = _codes(frame, self.learners, self.courses)
        if name == "global_mean":
            predicted = np.full(len(frame), self.mu)
        elif name == "biases":
            predicted = self._biases(u, i)
        elif name == "user_knn_rating":
            predicted = self._knn(u, i)
        else:
            raise ValueError(f"unknown rating model {name!r}")
        return np.clip(predicted, *self.scale)


def rating_errors(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE = mean |r - r̂|, MSE = mean (r - r̂)²."""
    error = np.asarray(truth, float) - np.asarray(predicted, float)
    return {"mae": float(np.mean(np.abs(error))), "mse": float(np.mean(error**2))}
