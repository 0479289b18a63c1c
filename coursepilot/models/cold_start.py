"""New learners known only by a profile text (job and software): MiniLM similarity of the profile to each
course, blended with popularity; the blend's popularity weight is chosen on the validation carve.

Tuning: training learners who have a profile text are ranked from that text alone (as if new; the
courses they kept in training are no candidates), with popularity counted on training minus the carve,
and scored by F1@5 against their validation courses.
Weight 0 (profile only) and 1 (popularity only) are in the grid, so on validation the blend is never
below popularity alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluation.metrics import hit_matrix, metrics_from_hits
from ..ranking import minmax_rows, top_k
from ..sampling import sample_learners
from .base import TrainData
from .simple import Popularity

DEFAULT_POPULARITY = 0.2  # the blend where validation cannot choose (no learner with a profile)
BLENDS = tuple(round(float(w), 1) for w in np.linspace(0, 1, 11))  # weight of popularity
TUNING_PROFILES = 2_000
PROFILE_COLUMNS = ("job", "software")


def profile_texts(con, learner_ids=None) -> pd.Series:
    """Profile text (job and software) per learner id, of ``learner_ids`` only when given; empty without
    them."""
    cols = {c[0] for c in con.execute("DESCRIBE learners").fetchall()}
    text_cols = [c for c in PROFILE_COLUMNS if c in cols]
    if not text_cols:
        return pd.Series(dtype=str)
    frame = (
        con.execute(f"SELECT learner_id, {', '.join(text_cols)} FROM learners").df().set_index("learner_id")
    )
    if learner_ids is not None:
        frame = frame.reindex(pd.Index(learner_ids).astype(str)).dropna(how="all")
    texts = frame[text_cols].fillna("").astype(str).agg(" ".join, axis=1).str.strip()
    return texts[texts != ""]


def popularity(data: TrainData) -> np.ndarray:
    """The popularity model's scores (log of each course's learner count)."""
    return Popularity().fit(data).counts


def blend(
    profile_vectors: np.ndarray, course_vectors: np.ndarray, counts: np.ndarray, weight: float
) -> np.ndarray:
    """(1 - weight) * minmax(profile · course) + weight * minmax(popularity), per profile."""
    similarity = minmax_rows(np.atleast_2d(profile_vectors) @ course_vectors.T)
    return (1 - weight) * similarity + weight * minmax_rows(counts[None, :])


def f1_at(scores: np.ndarray, relevant: list[set], k: int = 5, seen: np.ndarray | None = None) -> float:
    scores = np.asarray(scores, dtype=float)
    if seen is not None:  # courses the learner already took are no candidates
        scores = np.where(seen, -np.inf, scores)
    top = top_k(scores, min(k, scores.shape[1]))
    return float(
        metrics_from_hits(hit_matrix(top, relevant), np.array([len(r) for r in relevant]), (k,))[
            f"f1@{k}"
        ].mean()
    )


def tune_blend(
    con, fit_data: TrainData, valid: dict, embed, seed: int = 0
) -> tuple[float, dict[float, float]]:
    """(popularity weight, validation F1@5 by weight); (``DEFAULT_POPULARITY``, {}) when no validation learner
    has a profile."""
    texts = profile_texts(con, fit_data.learner_ids[np.array(sorted(valid), dtype=np.int64)] if valid else [])
    if texts.empty or fit_data.course_vectors is None:
        return DEFAULT_POPULARITY, {}
    rows = fit_data.learner_index(texts.index)
    chosen = sample_learners({int(r): valid[int(r)] for r in rows if r >= 0}, TUNING_PROFILES, seed)
    if not chosen:
        return DEFAULT_POPULARITY, {}
    order = np.array(sorted(chosen))
    vectors = embed(list(texts.loc[fit_data.learner_ids[order].astype(str)]))
    relevant = [chosen[int(r)] for r in order]
    counts = popularity(fit_data)
    seen = fit_data.matrix[order].toarray() > 0
    scores = {
        w: f1_at(blend(vectors, fit_data.course_vectors, counts, w), relevant, seen=seen) for w in BLENDS
    }
    return max(scores, key=lambda w: (scores[w], -w)), scores
