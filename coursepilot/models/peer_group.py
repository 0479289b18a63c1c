"""The second paper's peer-group recommender (section 3.3, eq. 13): learners are clustered by their
interactions, and a course scores by the share of the learner's peer group that took it.

Interaction vectors: each learner's binary training row, L2-normalised and reduced by a truncated SVD;
unit-length rows are clustered with mini-batch K-means (so K-means on them is cosine clustering).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize

from ..blas import LOCK
from .base import Recommender, TrainData

SVD_DIMS = 32


class PeerGroup(Recommender):
    """score(u, c) = share of u's cluster that took c in training."""

    name = "peer_group"
    state_keys = ("labels", "shares", "sizes")

    def __init__(self, clusters: int = 32, seed: int = 0):
        self.params = {"clusters": clusters, "seed": seed}

    def fit(self, data: TrainData) -> "PeerGroup":
        super().fit(data)
        taken = (data.matrix > 0).astype(np.float32).tocsr()
        n_learners, n_courses = taken.shape
        k = int(max(1, min(self.params["clusters"], n_learners)))
        unit = normalize(taken, norm="l2", axis=1)
        dims = min(SVD_DIMS, n_courses - 1)
        with LOCK:  # scikit-learn sets BLAS limits inside these fits
            features = (
                TruncatedSVD(dims, random_state=self.params["seed"]).fit_transform(unit)
                if dims >= 1
                else unit.toarray()
            )
            features = normalize(features)
            self.labels = MiniBatchKMeans(
                k, random_state=self.params["seed"], n_init=3, batch_size=4096
            ).fit_predict(features)
        members = sparse.csr_matrix(
            (np.ones(n_learners, np.float32), (self.labels, np.arange(n_learners))), shape=(k, n_learners)
        )
        sizes = np.asarray(members.sum(axis=1)).ravel()
        self.shares = np.asarray(
            (members @ taken).toarray() / np.maximum(sizes, 1)[:, None], dtype=np.float32
        )
        self.sizes = sizes.astype(np.int64)
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.shares[self.labels[np.asarray(rows)]]
