"""Peer groups (second paper, section 3.3).

Peer groups per window: K-means (k by silhouette within a range, or fixed) over the interaction
vectors up to t (eq. 13, reduced by truncated SVD) joined with the multi-factor profile (eq. 18-19,
reduced) and context (D_u(t), T_u(t)); DBSCAN on the same vectors. Each window's K-means starts from the
previous window's centroids, and its labels are matched to the previous window's (Hungarian assignment
on centroids), so a changed label means a learner moved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import DBSCAN, MiniBatchKMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.metrics import silhouette_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

from ..profiles import LearnerProfiles


@dataclass(frozen=True)
class ClusterConfig:
    k: int | None = None  # None: chosen by silhouette within k_range
    k_range: tuple[int, int] = (4, 16)
    svd_dims: int = 32
    profile_dims: int = 16
    context_weight: float = 1.0
    silhouette_sample: int = 5000
    fit_sample: int = 50_000  # learners the SVD projections and the candidate k are fitted on
    dbscan_max_learners: int = 20_000
    dbscan_min_samples: int = 5
    seed: int = 0


class ClusterSpace:
    """[SVD(interaction rows), SVD(profile), D/3, T] per learner, each block scaled to unit rows.

    The projections are fitted once, on the last window and at most ``fit_sample`` learners, and
    applied to every window, so that the windows share one space and clusters can be followed from
    one window to the next. The 1,536-wide profile is never materialised for everyone at once.
    """

    def __init__(self, config: ClusterConfig):
        self.config = config

    def fit(
        self, interactions: sparse.csr_matrix, profiles: LearnerProfiles, batch: int = 50_000
    ) -> "ClusterSpace":
        n = interactions.shape[0]
        rng = np.random.default_rng(self.config.seed)
        sample = np.sort(rng.choice(n, min(n, self.config.fit_sample), replace=False))
        self.svd = []
        for matrix, dims in (
            (interactions[sample], self.config.svd_dims),
            (profiles.stacked(sample), self.config.profile_dims),
        ):
            dims = max(1, min(dims, matrix.shape[1] - 1, matrix.shape[0] - 1))
            self.svd.append(TruncatedSVD(dims, random_state=self.config.seed).fit(matrix))
        self.axes = [svd.components_ for svd in self.svd]
        self.profile_block = self.profile_rows(profiles, np.arange(n), batch)
        return self

    @classmethod
    def restored(
        cls, config: ClusterConfig, axes: list[np.ndarray], profile_block: np.ndarray
    ) -> "ClusterSpace":
        """A space fitted earlier: its projections (interaction axes on today's course columns, profile
        axes) and the learners' profile block."""
        space = cls(config)
        space.axes, space.profile_block = axes, profile_block
        return space

    def profile_rows(self, profiles: LearnerProfiles, rows: np.ndarray, batch: int = 50_000) -> np.ndarray:
        """The profile block of the learners at ``rows``, projected ``batch`` learners at a time."""
        blocks = [
            normalize(profiles.stacked(rows[start : start + batch]) @ self.axes[1].T)
            for start in range(0, len(rows), batch)
        ]
        return np.vstack(blocks or [np.zeros((0, len(self.axes[1])))]).astype(np.float32)

    def transform(
        self,
        interactions: sparse.csr_matrix,
        proficiency: np.ndarray,
        temporal: np.ndarray,
        rows: np.ndarray | slice = slice(None),
    ) -> np.ndarray:
        """The features of the learners at ``rows`` (``interactions`` and the context hold only those)."""
        context = np.column_stack(
            [np.nan_to_num(proficiency / 3.0, nan=0.5), np.nan_to_num(temporal, nan=0.5)]
        )
        return np.hstack(
            [
                normalize(np.asarray(interactions @ self.axes[0].T)),
                self.profile_block[rows],
                self.config.context_weight * context,
            ]
        ).astype(np.float32)


def kmeans(
    features: np.ndarray, config: ClusterConfig, init: np.ndarray | None = None, score: bool = True
) -> tuple[np.ndarray, np.ndarray, int, dict[int, float]]:
    """(labels, centroids, k, silhouette by k) with MiniBatchKMeans.

    Without a fixed k, each candidate is fitted on a seeded sample of ``fit_sample`` learners and
    scored by silhouette on ``silhouette_sample`` of them; the best k is then fitted on everyone.
    ``init``: centroids to start from (the previous window's), one run instead of three seeded ones.
    ``score=False`` with a fixed k: no silhouette (an empty dict).
    """
    rng = np.random.default_rng(config.seed)
    sample = features[rng.choice(len(features), min(len(features), config.fit_sample), replace=False)]
    scored = sample[: config.silhouette_sample]  # the sample is in random order

    def fit(k: int, rows: np.ndarray, start: np.ndarray | None = None) -> MiniBatchKMeans:
        starts = {"n_init": 3} if start is None else {"init": start, "n_init": 1}
        return MiniBatchKMeans(k, random_state=config.seed, batch_size=4096, **starts).fit(rows)

    def silhouette(model: MiniBatchKMeans) -> float:
        return _silhouette(scored, model.predict(scored))

    if config.k:
        best, scores = config.k, {}
    else:
        candidates = range(config.k_range[0], min(config.k_range[1], len(sample) - 1) + 1)
        scores = {k: silhouette(fit(k, sample)) for k in candidates}
        best = max(scores, key=scores.get)
    model = fit(best, features, init if init is not None and len(init) == best else None)
    if score:
        scores.setdefault(best, silhouette(model))
    return model.labels_, model.cluster_centers_, best, scores


def _silhouette(features: np.ndarray, labels: np.ndarray) -> float:
    return float(silhouette_score(features, labels)) if len(set(labels)) > 1 else -1.0


def sampled_silhouette(features: np.ndarray, labels: np.ndarray, config: ClusterConfig) -> float:
    """The silhouette of ``labels`` on a seeded sample of ``silhouette_sample`` learners."""
    rng = np.random.default_rng(config.seed)
    rows = rng.choice(len(features), min(len(features), config.silhouette_sample), replace=False)
    return _silhouette(features[rows], labels[rows])


def align_labels(
    previous_centroids: np.ndarray | None, centroids: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Relabel clusters to the nearest previous ones (Hungarian assignment), so labels persist over
    windows."""
    if previous_centroids is None or len(previous_centroids) != len(centroids):
        return labels, centroids
    cost = ((centroids[:, None, :] - previous_centroids[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    mapping = np.empty(len(centroids), dtype=int)
    mapping[rows] = cols
    ordered = np.empty_like(centroids)
    ordered[mapping] = centroids
    return mapping[labels], ordered


def dbscan(features: np.ndarray, config: ClusterConfig) -> np.ndarray:
    """DBSCAN labels (-1 = noise) on at most ``dbscan_max_learners`` learners (others -2: not run).

    eps is the median distance to the ``min_samples``-th neighbour, a common density heuristic.
    """
    labels = np.full(len(features), -2)
    rng = np.random.default_rng(config.seed)
    idx = np.sort(rng.choice(len(features), min(len(features), config.dbscan_max_learners), replace=False))
    sample = features[idx]
    distances, _ = NearestNeighbors(n_neighbors=config.dbscan_min_samples + 1).fit(sample).kneighbors(sample)
    eps = float(np.median(distances[:, -1])) or 1e-3
    labels[idx] = DBSCAN(eps=eps, min_samples=config.dbscan_min_samples).fit_predict(sample)
    return labels


def latest_by_window(
    state: pd.DataFrame, ids: np.ndarray, windows: np.ndarray, columns=("D", "T")
) -> dict[str, np.ndarray]:
    """Per column, an (learners, windows) array of each learner's latest state row at or before each window
    (NaN before their first); ``state`` has ``learner_id``, ``week`` and the columns, ``ids`` gives the
    learner rows."""
    rows = pd.Index(ids).get_indexer(state["learner_id"])
    keep = rows >= 0
    rows, cols = rows[keep], np.searchsorted(windows, state["week"].to_numpy()[keep])
    present = np.full((len(ids), len(windows)), -1)
    present[rows, cols] = np.arange(len(windows))[cols]
    latest = np.maximum.accumulate(present, axis=1)  # the last window with a state row, -1 before any
    out = {}
    for name in columns:
        grid = np.full((len(ids), len(windows)), np.nan)
        grid[rows, cols] = state[name].to_numpy(float)[keep]
        out[name] = np.where(latest >= 0, np.take_along_axis(grid, np.maximum(latest, 0), axis=1), np.nan)
    return out
