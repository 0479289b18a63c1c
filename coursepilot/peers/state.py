"""Learning state and difficulty steering (second paper, sections 3.2 and 3.5).

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ..schema import DIFFICULTY_LEVELS


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


def week_origin(frame: pd.DataFrame) -> pd.Timestamp | None:
    """Midnight of the first ``ts``, from which weekly windows count (None without timestamps)."""
    if "ts" not in frame or not frame["ts"].notna().any():
        return None
    return frame["ts"].min().normalize()


def weekly_windows(frame: pd.DataFrame, origin: pd.Timestamp | None = None) -> np.ndarray:
    """Weekly window of each interaction, counted from ``origin`` (default: :func:`week_origin` of ``frame``;
    all 0 without ts)."""
    origin = week_origin(frame) if origin is None else origin
    if origin is None:
        return np.zeros(len(frame), dtype=np.int64)
    return ((frame["ts"] - origin).dt.days // 7).fillna(0).astype(np.int64).to_numpy()


def learner_state(frame: pd.DataFrame, rating_scale, weights: StateWeights = StateWeights()) -> pd.DataFrame:
    """Per (learner, window): W, R, E, D, T, P, the window's mean course level (0-2) and the target difficulty
    for the next course. Rows are grouped by learner, in window order.

    ``frame``: training interactions with ``difficulty`` (text) and ``duration_min`` joined from courses.
    """
    return derive_state(window_aggregates(frame, rating_scale), weights)


def window_aggregates(frame: pd.DataFrame, rating_scale, origin: pd.Timestamp | None = None) -> pd.DataFrame:
    """The part of :func:`learner_state` that reads only a learner's own rows: per (learner, window) n, W, R,
    unscaled engagement ``E_raw``, cumulative proficiency D and mean level, grouped by learner in window
    order. Windows count from ``origin`` (default: the first ``ts`` of ``frame``)."""
    frame = frame.copy()
    frame["week"] = weekly_windows(frame, origin)
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
        frame["E_raw"] = watch * frame["duration_min"]
    elif "clicks" in frame:
        frame["E_raw"] = frame["clicks"]
    else:
        frame["E_raw"] = 1.0
    signals["E_raw"] = "sum"
    # integer keys group far faster than id strings
    codes, learner_ids = pd.factorize(frame["learner_id"], sort=True)
    frame["learner_id"] = codes
    state = frame.groupby(["learner_id", "week"]).agg(
        n=("course_id", "size"), **{k: (k, agg) for k, agg in signals.items()}
    )
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
    state["level"] = level_mean.reindex(state.index)
    state = state.reset_index()
    state["learner_id"] = np.asarray(learner_ids, dtype=object)[state["learner_id"].to_numpy()]
    return state


def derive_state(
    state: pd.DataFrame, weights: StateWeights, e_range: tuple[float, float] | None = None
) -> pd.DataFrame:
    """:func:`window_aggregates` of every learner with E (``E_raw`` min-max scaled over all windows), T, P and
    the target difficulty added: what depends on everyone or on the weights. ``e_range``: the (min, max) of
    ``E_raw`` over everyone, when ``state`` holds only some learners."""
    state = state.copy()
    raw = state["E_raw"]
    low, high = (raw.min(), raw.max()) if e_range is None else e_range
    state["E"] = (raw - low) / max(high - low, 1e-12)
    parts = {k: state[k] for k in ("W", "R", "E") if k in state}
    state["T"] = _combine(parts, {"R": weights.alpha, "W": weights.beta, "E": weights.gamma})
    state["P"] = _combine(parts, {"W": weights.eta1, "R": weights.eta2, "E": weights.eta3})
    state["target_difficulty"] = difficulty_path(
        state["learner_id"].to_numpy(),
        state["P"].to_numpy(),
        state["level"].to_numpy(),
        weights.delta,
        weights.theta,
    )
    return state


def difficulty_path(
    learners: np.ndarray, p: np.ndarray, level: np.ndarray, delta: float, theta: float
) -> np.ndarray:
    """Equation (21) run forward through each learner's windows (rows grouped by learner, in window order),
    from the ``level`` (0-2) of their first window (1 when unknown), clipped to [0, 2]: the target after each
    window."""
    starts = np.flatnonzero(np.r_[len(learners) > 0, learners[1:] != learners[:-1]])
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
    last = np.r_[learners[1:] != learners[:-1], True][: len(learners)]
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
