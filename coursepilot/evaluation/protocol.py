"""Scoring a recommender on held-out interactions with the shared protocol (see metrics.py)."""

from __future__ import annotations

import numpy as np

from ..models.base import Recommender, TrainData, split_matrix
from ..ranking import relevant_sets
from ..sampling import SCORED_LEARNERS, sample_learners
from .metrics import hit_matrix, metrics_from_hits


def held_out(con, data: TrainData, split: str = "test", rating_scale=None) -> dict[int, set[int]]:
    """{learner row: course columns} of a split, for learners and courses the model knows."""
    return relevant_sets(split_matrix(con, (split,), data.learner_ids, data.course_ids, rating_scale))


def evaluate(
    model: Recommender, relevant: dict[int, set[int]], ks=(5, 10), max_learners: int = SCORED_LEARNERS
) -> dict[str, float]:
    """Mean ranking metrics of ``model`` (already fitted) over the learners in ``relevant``.

    Above ``max_learners`` the mean is over a seeded sample of that many (the same sample for every
    model scored on the same split; see ``coursepilot.sampling``).
    """
    relevant = sample_learners(relevant, max_learners)
    rows = np.array(list(relevant), dtype=np.int64)
    if not len(rows):
        return {}
    top = model.recommend(rows, max(ks))
    sets = [relevant[int(r)] for r in rows]
    per = metrics_from_hits(hit_matrix(top, sets), np.array([len(s) for s in sets]), ks)
    return {key: float(np.mean(values)) for key, values in per.items()}
