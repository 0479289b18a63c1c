"""Popularity, user-based kNN (second paper, equations 8-9) and content affinity (equation 12)."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.preprocessing import normalize

from ..learner_neighbours import LearnerNeighbours
from .base import Recommender, TrainData

GRAM_COURSES = 10_000  # course Gram matrix up to this many courses (400 MB of float32)


class Popularity(Recommender):
    """Every learner gets the courses most taken in training (log of the learner count)."""

    name = "popularity"
    state_keys = ("counts",)

    def fit(self, data: TrainData) -> "Popularity":
        super().fit(data)
        self.counts = np.log1p(np.asarray((data.matrix > 0).sum(axis=0)).ravel())
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.tile(self.counts, (len(rows), 1))


class Trending(Recommender):
    """Popularity now: each training interaction counts exp(-age / half-life), its age measured from the
    latest training interaction, the half-life a share of the training period (``half_life``, tuned on
    validation)."""

    name = "trending"
    state_keys = ("counts",)

    def __init__(self, half_life: float = 0.1):
        self.params = {"half_life": half_life}

    def fit(self, data: TrainData) -> "Trending":
        super().fit(data)
        if data.times is None or not data.times.nnz:
            raise ValueError("trending needs interaction times")
        times = data.times
        latest, span = times.data.max(), max(np.ptp(times.data), 1.0)
        decayed = times.copy()
        decayed.data = np.exp2(-(latest - times.data) / (self.params["half_life"] * span))
        self.counts = np.log1p(np.asarray(decayed.sum(axis=0)).ravel())
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.tile(self.counts, (len(rows), 1))


class UserKNN(Recommender):
    """r̂_ui = Σ_{v ∈ N_u} sim(u, v) r_vi / Σ_{v ∈ N_u} |sim(u, v)|, sim = cosine of interaction rows (eq.
    8-9)."""

    name = "user_knn"

    def __init__(self, neighbours: int = 50):
        self.neighbours = neighbours

    def restore(self, data: TrainData, state: dict) -> "UserKNN":
        return self.fit(data)  # the neighbour index is rebuilt from the training rows

    def fit(self, data: TrainData) -> "UserKNN":
        super().fit(data)
        self.index = LearnerNeighbours(data.matrix, self.neighbours)
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        weights = self.index.weights(rows)
        numerator = (weights @ self.data.matrix).toarray()
        denominator = np.asarray(abs(weights).sum(axis=1))
        return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


class Content(Recommender):
    """ŝ_ui = cos(E_u, E_i) (eq. 12): E_u is the confidence-weighted mean of the learner's training
    course vectors; MiniLM embeddings (``content_minilm``) or TF-IDF rows (``content_tfidf``).

    Up to ``gram_courses`` courses the scores come from the course Gram matrix G = V Vᵀ: with a
    learner's weights w, E_u·V_i = (wG)_i and |E_u| = sqrt(w·wG), so a batch costs one sparse-dense
    product instead of a TF-IDF profile per learner (20 times faster at 5,000 courses). Above it G
    (courses² floats) would not fit, and the profiles are built per batch.
    """

    def __init__(self, kind: str = "minilm", gram_courses: int = GRAM_COURSES):
        if kind not in ("minilm", "tfidf"):
            raise ValueError("kind is minilm or tfidf")
        self.kind, self.gram_courses = kind, gram_courses
        self.name = f"content_{kind}"

    def restore(self, data: TrainData, state: dict) -> "Content":
        return self.fit(data)  # the course vectors are part of the training data

    def fit(self, data: TrainData) -> "Content":
        super().fit(data)
        vectors = data.course_vectors if self.kind == "minilm" else data.course_tfidf
        if vectors is None:
            raise ValueError(f"{self.name} needs course {self.kind} vectors")
        self.courses = vectors
        self.gram = None
        if vectors.shape[0] <= self.gram_courses:
            gram = vectors @ vectors.T
            self.gram = np.asarray(gram.toarray() if sparse.issparse(gram) else gram, dtype=np.float32)
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        weights = self.data.matrix[rows]
        if self.gram is not None:
            dots = np.asarray(weights @ self.gram)
            norms = np.sqrt(np.maximum(np.asarray(weights.multiply(dots).sum(axis=1)), 0))
            return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
        # profiles for the requested rows only: a TF-IDF profile holds every term of every course the learner
        # took
        profiles = normalize(weights @ self.courses, norm="l2", axis=1)
        scores = profiles @ self.courses.T
        return scores.toarray() if sparse.issparse(scores) else np.asarray(scores)
