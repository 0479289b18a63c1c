"""A recommender with given scores, for tests of what combines components (the fusion reads only
``score``)."""

from __future__ import annotations

import numpy as np

from coursepilot.models.simple import Popularity


class FixedScores(Popularity):
    """Scores ``scores[rows]``; ``fit`` only records the data it was given (``fitted_on``)."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=float)
        self.fitted_on = None

    def fit(self, data):
        self.data = self.fitted_on = data
        return self

    def score(self, rows):
        return self.scores[rows]
