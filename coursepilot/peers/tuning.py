"""Hybrid-peer weights chosen on a validation carve of training, never on test.

Each learner's latest ``share`` of training rows (:func:`~coursepilot.models.hybrid.latest_per_learner`, the
test split's own rule) plays the test period: a peer is relevant when they share one of those courses, as the
test protocol says. Relevance is defined between held-out learners, so the carve must hold the kind of
learners the test holds (those with the most interactions), which the platform's latest rows, the
recommenders' other carve, do not: on OULAD, tuned on the platform's latest rows, hybrid peers fell from 0.360
to 0.134 test nDCG@10 (active peers 0.258), because the activity term scored 0 on that carve. The interaction
and activity terms, the profile parts learnt from interactions (content, theme) and the level come from the
other rows; the clusters (which only pick the candidates) are the stored ones. Above ``TUNING_FIT_LEARNERS``
the tuning runs within a seeded sample of that many learners (:func:`tuning_sample`), as every tuning does.
The grid holds every term alone (the interaction term alone ranks like ``cf_peers`` among the candidates, the
activity term alone is ``active_peers``, whose learners every pool holds), the configured weights and the
mixtures of ``GRID_VALUES``; the best validation nDCG@10 wins, the first point on a tie, so on validation the
tuned hybrid is never below any of its terms.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from ..confidence import confidence_weights
from ..models.base import interaction_matrix
from ..models.hybrid import latest_per_learner
from ..profiles import (
    CodedVectors,
    LearnerProfiles,
    SpanVectors,
    attribute_table,
    lookup,
    weighted_profiles,
)
from ..sampling import TUNING_FIT_LEARNERS, sample_rows
from ..warehouse import columns, read_vectors
from .ranking import (
    TERMS,
    PeerConfig,
    active_peers,
    cf_peers,
    evaluated_learners,
    peer_batches,
    peer_metrics,
)
from .state import learner_state

PEER_TUNING_LEARNERS = 2_000  # validation learners scored per grid point (seeded sample above it)
GRID_VALUES = (0.0, 0.1, 0.3, 1.0)


@dataclass
class CourseSide:
    """What learner profiles average over the courses a learner took: MiniLM embeddings and theme vectors."""

    vectors: np.ndarray  # rows aligned with the course columns
    themes: CodedVectors

    @classmethod
    def read(cls, con, course_ids: np.ndarray) -> "CourseSide":
        ids, vectors = read_vectors(con, "course_embeddings", "course_id", "embedding")
        at = pd.Index(ids).get_indexer(course_ids)
        aligned = np.where(at[:, None] >= 0, vectors[at], 0).astype(np.float32)
        theme = "theme" if "theme" in columns(con, "courses") else "NULL AS theme"
        texts = con.execute(f"SELECT course_id, {theme} FROM courses").df().set_index("course_id")["theme"]
        return cls(
            aligned, lookup(texts.reindex(course_ids), attribute_table(con)["theme"], vectors.shape[1])
        )

    def profiles(self, profiles: LearnerProfiles, coded: pd.DataFrame, rating_scale) -> LearnerProfiles:
        """``profiles`` with the parts learnt from interactions (content, theme) rebuilt from ``coded`` rows
        only."""
        rows, cols, weights = (
            coded["row"].to_numpy(),
            coded["col"].to_numpy(),
            confidence_weights(coded, rating_scale),
        )
        n = len(profiles.ids)
        rebuilt = {
            "desc": weighted_profiles(rows, cols, weights, self.vectors, n),
            "theme": SpanVectors.weighted(rows, cols, weights, self.themes, n),
        }
        return LearnerProfiles(profiles.ids, {**profiles.parts, **rebuilt})


@dataclass
class PeerValidation:
    """Training minus the carve (``fit``, and the profiles and levels it gives) and the carve (``held``)."""

    fit: sparse.csr_matrix
    held: sparse.csr_matrix
    profiles: LearnerProfiles
    proficiency: np.ndarray


def peer_validation(
    train: pd.DataFrame,
    profiles: LearnerProfiles,
    course_ids: np.ndarray,
    courses: CourseSide,
    rating_scale,
    share: float = 0.2,
    seed: int = 0,
) -> PeerValidation:
    """The validation carve of ``train``: training interactions with the course ``difficulty`` (and
    ``duration_min``) joined, as :func:`~coursepilot.peers.learner_state` reads them; rows and columns follow
    ``profiles.ids`` and ``course_ids``."""
    coded = train.assign(
        row=pd.Index(profiles.ids).get_indexer(train["learner_id"]),
        col=pd.Index(course_ids).get_indexer(train["course_id"]),
    )
    coded = coded[(coded["row"] >= 0) & (coded["col"] >= 0)].sort_values(["row", "col"], ignore_index=True)
    held = latest_per_learner(coded, share, seed=seed)
    fit, shape = coded[~held], (len(profiles.ids), len(course_ids))
    last = learner_state(fit, rating_scale).sort_values("week").groupby("learner_id").tail(1)
    return PeerValidation(
        interaction_matrix(fit, shape, None),
        interaction_matrix(coded[held], shape, None),
        courses.profiles(profiles, fit, rating_scale),
        last.set_index("learner_id")["D"].reindex(profiles.ids).to_numpy(float),
    )


def tuning_sample(
    profiles: LearnerProfiles, labels: np.ndarray, limit: int = TUNING_FIT_LEARNERS, seed: int = 0
) -> tuple[LearnerProfiles, np.ndarray]:
    """(profiles, cluster labels) of a seeded sample of at most ``limit`` learners: the population the weights
    are tuned in (candidates and validation learners both come from it), so its cost stops growing with the
    platform."""
    rows = sample_rows(len(profiles.ids), limit, seed)
    return (profiles, labels) if rows is None else (profiles.subset(rows), labels[rows])


def weight_grid(values=GRID_VALUES, start: np.ndarray | None = None) -> np.ndarray:
    """Weight vectors over :data:`~coursepilot.peers.ranking.TERMS`, scaled so the largest is 1 (a ranking
    does not change with the scale): each term alone first, then ``start`` (when given), then every mixture of
    ``values``."""
    mixtures = np.array(
        [p for p in itertools.product(values, repeat=len(TERMS)) if max(p) == 1 and sum(p) > 1]
    )
    first = [np.asarray(start, float)[None] / max(start)] if start is not None and max(start) > 0 else []
    points = np.round(np.vstack([np.eye(len(TERMS)), *first, mixtures]), 6)
    return points[np.sort(np.unique(points, axis=0, return_index=True)[1])]


@dataclass
class PeerTuning:
    """The chosen weights and, on the same validation learners, their nDCG@10, each term's alone and the
    baselines' (cf_peers, active_peers): what the asset stores and shows."""

    weights: dict[str, float]  # term -> weight
    valid_ndcg: float
    learners: int
    alone: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, float] = field(default_factory=dict)


def tune_weights(
    validation: PeerValidation,
    labels: np.ndarray,
    centroids: np.ndarray,
    config: PeerConfig = PeerConfig(),
    max_learners: int = PEER_TUNING_LEARNERS,
    values=GRID_VALUES,
) -> PeerTuning:
    """Grid-search the term weights by validation nDCG@10 over a seeded sample of at most ``max_learners``
    learners (the candidates and terms of :func:`~coursepilot.peers.ranking.peer_batches` on the ``fit``
    rows).
    Without a learner to score, the configured weights stay."""
    held = (validation.held > 0).astype(np.float32).tocsr()
    rows, n_relevant = evaluated_learners(held, max_learners, config.seed)
    if not len(rows):
        return PeerTuning(dict(zip(TERMS, map(float, config.weights))), 0.0, 0)
    points = weight_grid(values, config.weights)
    tops = np.full((len(points), len(rows), config.k), -1, dtype=np.int64)
    batches = peer_batches(
        validation.fit, validation.profiles, validation.proficiency, labels, centroids, config, rows
    )
    for batch in batches:
        at = np.searchsorted(rows, batch.rows)
        for i, weights in enumerate(points):
            tops[i, at, : batch.k] = batch.top(weights)

    def ndcg(ranked: np.ndarray) -> float:
        return float(peer_metrics(held, rows, n_relevant, ranked, ks=(10,))["ndcg@10"].mean())

    scores = np.array([ndcg(top) for top in tops])
    best = int(scores.argmax())  # the first best: a term alone before any mixture
    baselines = {
        name: ndcg(rank(validation.fit, config.k, rows)[rows])
        for name, rank in (("cf_peers", cf_peers), ("active_peers", active_peers))
    }
    return PeerTuning(
        dict(zip(TERMS, map(float, points[best]))),
        float(scores[best]),
        len(rows),
        dict(zip(TERMS, map(float, scores[: len(TERMS)]))),
        baselines,
    )
