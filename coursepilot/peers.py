"""Dynamic peer learning (second paper, sections 3.2, 3.3 and 3.5).

Learning state, per learner and weekly window (one window without timestamps), from training data:
- W_u(t): mean watch share (0-1); R_u(t): mean rating scaled 0-1; E_u(t): engagement minutes
  (watch share x course duration, else clicks, else courses taken) min-max scaled over all windows;
  a signal missing from a window (a source without ratings, or a week without one) is left out of
  that window's T and P and the weights of the others are renormalised;
- D_u(t), equation (3): (1/|I_u|) sum_i d_i W_ui over the courses taken up to t, d_i = 1, 2, 3 for
  basic, intermediate, advanced (W_ui = 1 without watch data);
- T_u(t) = alpha R + beta W + gamma E (eq. 6); P_u(t) = eta1 W + eta2 R + eta3 E (eq. 20);
- d_{t+1} = d_t + delta (P_u(t) - theta) (eq. 21), starting from the mean difficulty (0-2) of the
  learner's first window and clipped to [0, 2]: the target difficulty of the next course. delta and
  theta are chosen on the validation nDCG@10 of the ranking they steer (:func:`tune_steering`).

Peer groups per window: K-means (k by silhouette within a range, or fixed) over the interaction
vectors up to t (eq. 13, reduced by truncated SVD) joined with the multi-factor profile (eq. 18-19,
reduced) and context (D_u(t), T_u(t)); DBSCAN on the same vectors. Each window's K-means starts from the
previous window's centroids, and its labels are matched to the previous window's (Hungarian assignment
on centroids), so a changed label means a learner moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import DBSCAN, MiniBatchKMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.metrics import silhouette_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

from .profiles import LearnerProfiles
from .schema import DIFFICULTY_LEVELS


@dataclass(frozen=True)
class StateWeights:
    alpha: float = 0.3  # T_u: rating
    beta: float = 0.4  # T_u: watch
    gamma: float = 0.3  # T_u: engagement
    eta1: float = 0.4  # P_u: watch
    eta2: float = 0.3  # P_u: rating
    eta3: float = 0.3  # P_u: engagement
    delta: float = 0.5
    theta: float = 0.6


def _combine(parts: dict[str, pd.Series], weights: dict[str, float]) -> pd.Series:
    """Weighted sum per row over the signals present in that row, their weights renormalised to sum to 1."""
    present = {k: w for k, w in weights.items() if k in parts}
    total = sum(parts[k].notna() * w for k, w in present.items())
    return sum(parts[k].fillna(0.0) * w for k, w in present.items()) / total


def weekly_windows(frame: pd.DataFrame) -> np.ndarray:
    """Weekly window of each interaction, counted from midnight of the first ``ts`` (all 0 without ts)."""
    if "ts" not in frame or not frame["ts"].notna().any():
        return np.zeros(len(frame), dtype=np.int64)
    return ((frame["ts"] - frame["ts"].min().normalize()).dt.days // 7).fillna(0).astype(np.int64).to_numpy()


def learner_state(frame: pd.DataFrame, rating_scale, weights: StateWeights = StateWeights()) -> pd.DataFrame:
    """Per (learner, window): W, R, E, D, T, P, the window's mean course level (0-2) and the target difficulty
    for the next course. Rows are grouped by learner, in window order.

    ``frame``: training interactions with ``difficulty`` (text) and ``duration_min`` joined from courses.
    """
    frame = frame.copy()
    frame["week"] = weekly_windows(frame)
    watch = frame["watch_pct"] / 100.0 if "watch_pct" in frame else None
    level = (
        frame["difficulty"].map({v: i + 1 for i, v in enumerate(DIFFICULTY_LEVELS)})
        if "difficulty" in frame
        else None
    )
    signals = {}
    if watch is not None:
        frame["W"] = watch
        signals["W"] = "mean"
    if "rating" in frame and rating_scale:
        low, high = rating_scale
        frame["R"] = (frame["rating"] - low) / (high - low)
        signals["R"] = "mean"
    if watch is not None and "duration_min" in frame:
        frame["E"] = watch * frame["duration_min"]
    elif "clicks" in frame:
        frame["E"] = frame["clicks"]
    else:
        frame["E"] = 1.0
    signals["E"] = "sum"
    # integer keys group far faster than id strings
    codes, learner_ids = pd.factorize(frame["learner_id"], sort=True)
    frame["learner_id"] = codes
    state = frame.groupby(["learner_id", "week"]).agg(
        n=("course_id", "size"), **{k: (k, agg) for k, agg in signals.items()}
    )
    state["E"] = (state["E"] - state["E"].min()) / max(state["E"].max() - state["E"].min(), 1e-12)
    # D_u(t), eq. 3, cumulative over the windows up to t
    if level is not None:
        frame["dw"] = level * (watch.fillna(1.0) if watch is not None else 1.0)
        frame["known"] = level.notna().astype(float)
        per = frame.groupby(["learner_id", "week"])[["dw", "known"]].sum().groupby(level=0).cumsum()
        state["D"] = (per["dw"] / per["known"].where(per["known"] > 0)).reindex(state.index)
        level_mean = frame.assign(lv=level - 1).groupby(["learner_id", "week"])["lv"].mean()
    else:
        state["D"] = np.nan
        level_mean = pd.Series(np.nan, index=state.index)
    parts = {k: state[k] for k in ("W", "R", "E") if k in state}
    state["T"] = _combine(parts, {"R": weights.alpha, "W": weights.beta, "E": weights.gamma})
    state["P"] = _combine(parts, {"W": weights.eta1, "R": weights.eta2, "E": weights.eta3})
    state["level"] = level_mean.reindex(state.index)
    state["target_difficulty"] = difficulty_path(
        state.index.get_level_values(0).to_numpy(),
        state["P"].to_numpy(),
        state["level"].to_numpy(),
        weights.delta,
        weights.theta,
    )
    state = state.reset_index()
    state["learner_id"] = np.asarray(learner_ids, dtype=object)[state["learner_id"].to_numpy()]
    return state


def difficulty_path(
    learners: np.ndarray, p: np.ndarray, level: np.ndarray, delta: float, theta: float
) -> np.ndarray:
    """Equation (21) run forward through each learner's windows (rows grouped by learner, in window order),
    from the ``level`` (0-2) of their first window (1 when unknown), clipped to [0, 2]: the target after each
    window."""
    starts = np.flatnonzero(np.r_[True, learners[1:] != learners[:-1]])
    sizes = np.diff(np.r_[starts, len(learners)])
    d = np.where(np.isfinite(level[starts]), level[starts], 1.0)
    out = np.empty(len(learners))
    # one step per window, for every learner at once
    for step in range(int(sizes.max()) if len(sizes) else 0):
        live = sizes > step
        rows = starts[live] + step
        d[live] = np.clip(d[live] + delta * (p[rows] - theta), 0, 2)
        out[rows] = d[live]
    return out


def last_targets(state: pd.DataFrame, delta: float, theta: float) -> pd.Series:
    """Each learner's target difficulty after their last window under equation (21) with ``delta`` and
    ``theta``, by ``learner_id``; ``state`` as :func:`learner_state` returns it."""
    learners = state["learner_id"].to_numpy()
    path = difficulty_path(learners, state["P"].to_numpy(float), state["level"].to_numpy(float), delta, theta)
    last = np.r_[learners[1:] != learners[:-1], True]
    return pd.Series(path[last], index=learners[last])


STEERING_DELTAS = (0.0, 0.1, 0.25, 0.5, 1.0)
STEERING_THETAS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass
class Steering:
    """Equation (21)'s step and threshold as validation chose them."""

    delta: float
    theta: float
    valid_ndcg: float
    grid: pd.DataFrame  # delta, theta, ndcg@10 of each point tried


def tune_steering(
    state: pd.DataFrame, score: Callable[[pd.Series], float], deltas=STEERING_DELTAS, thetas=STEERING_THETAS
) -> Steering:
    """The (delta, theta) whose targets (:func:`last_targets`) score best: ``score`` is the validation nDCG@10
    of the ranking they steer and ``state`` the learning state of training minus the validation carve. Without
    a step theta does nothing, so delta 0 is tried once; a tie goes to the smaller delta, then the smaller
    theta."""
    points = [(d, t) for d in deltas for t in (thetas if d else thetas[:1])]
    grid = pd.DataFrame(
        [(d, t, score(last_targets(state, d, t))) for d, t in points], columns=["delta", "theta", "ndcg@10"]
    )
    best = grid.loc[grid["ndcg@10"].idxmax()]
    return Steering(float(best["delta"]), float(best["theta"]), float(best["ndcg@10"]), grid)


def adjust_difficulty(d: float, p: float, delta: float, theta: float) -> float:
    """One step of equation (21), unclipped: harder when P > theta, easier when below."""
    return d + delta * (p - theta)


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
        self.profile_block = np.vstack(
            [
                normalize(self.svd[1].transform(profiles.stacked(slice(start, start + batch))))
                for start in range(0, n, batch)
            ]
        ).astype(np.float32)
        return self

    def transform(
        self, interactions: sparse.csr_matrix, proficiency: np.ndarray, temporal: np.ndarray
    ) -> np.ndarray:
        context = np.column_stack(
            [np.nan_to_num(proficiency / 3.0, nan=0.5), np.nan_to_num(temporal, nan=0.5)]
        )
        return np.hstack(
            [
                normalize(self.svd[0].transform(interactions)),
                self.profile_block,
                self.config.context_weight * context,
            ]
        ).astype(np.float32)


def kmeans(
    features: np.ndarray, config: ClusterConfig, init: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int, dict[int, float]]:
    """(labels, centroids, k, silhouette by k) with MiniBatchKMeans.

    Without a fixed k, each candidate is fitted on a seeded sample of ``fit_sample`` learners and
    scored by silhouette on ``silhouette_sample`` of them; the best k is then fitted on everyone.
    ``init``: centroids to start from (the previous window's), one run instead of three seeded ones.
    """
    rng = np.random.default_rng(config.seed)
    sample = features[rng.choice(len(features), min(len(features), config.fit_sample), replace=False)]
    scored = sample[: config.silhouette_sample]  # the sample is in random order

    def fit(k: int, rows: np.ndarray, start: np.ndarray | None = None) -> MiniBatchKMeans:
        starts = {"n_init": 3} if start is None else {"init": start, "n_init": 1}
        return MiniBatchKMeans(k, random_state=config.seed, batch_size=4096, **starts).fit(rows)

    def silhouette(model: MiniBatchKMeans) -> float:
        labels = model.predict(scored)
        return float(silhouette_score(scored, labels)) if len(set(labels)) > 1 else -1.0

    if config.k:
        best, scores = config.k, {}
    else:
        candidates = range(config.k_range[0], min(config.k_range[1], len(sample) - 1) + 1)
        scores = {k: silhouette(fit(k, sample)) for k in candidates}
        best = max(scores, key=scores.get)
    model = fit(best, features, init if init is not None and len(init) == best else None)
    scores.setdefault(best, silhouette(model))
    return model.labels_, model.cluster_centers_, best, scores


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
