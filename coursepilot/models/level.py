"""The level-match term: how well a course's level suits the learner, from two signals.

- ``difficulty``: level(s, c) = 1 - |t_s - d_c| / 2 rewards courses whose difficulty d_c (0 beginner ..
  2 advanced) is near the learner's target level t_s = clip(mean difficulty of their training courses +
  (p_adaptive - 0.5), 0, 2): adaptive learners are pushed toward harder courses, non-adaptive ones toward
  foundational ones. A course of unknown difficulty, or a learner without a target, scores 0.5.
- ``intensity``: the first paper's match of learner and course labels, with p_intensive the course's
  probability of being cognitively intensive (equation 3) and p_adaptive the learner's of being adaptive:
  match(s, c) = p_adaptive * p_intensive + (1 - p_adaptive) * (1 - p_intensive), the chance that an adaptive
  learner meets an intensive course or a non-adaptive one an accessible course. Unknown either way: 0.5.
- ``both``: the mean of the two.
"""

from __future__ import annotations

import numpy as np

from ..schema import DIFFICULTY_LEVELS
from .base import Recommender, TrainData

SIGNALS = ("difficulty", "intensity", "both")


def level_targets(data: TrainData) -> np.ndarray:
    """t_s per learner row (NaN for a learner with no training course of known difficulty)."""
    known = data.difficulty >= 0
    taken = (data.matrix > 0).astype(np.float32)
    total = np.asarray(taken[:, known].sum(axis=1)).ravel()
    level_sum = np.asarray(taken[:, known] @ data.difficulty[known].astype(np.float32)).ravel()
    mean = np.divide(level_sum, total, out=np.full(len(total), np.nan), where=total > 0)
    shift = np.nan_to_num(
        (data.p_adaptive if data.p_adaptive is not None else np.full(len(total), 0.5)) - 0.5
    )
    return np.clip(mean + shift, 0, 2)


def difficulty_table(target: np.ndarray) -> np.ndarray:
    """``(len(target), levels + 1)``: a learner's level match with a course of each difficulty, the last
    column a course of unknown difficulty (0.5, as for a learner without a target)."""
    levels = len(DIFFICULTY_LEVELS)
    table = np.full((len(target), levels + 1), 0.5)
    table[:, :levels] = np.where(
        np.isnan(target)[:, None], 0.5, 1 - np.abs(target[:, None] - np.arange(levels)) / 2
    )
    return table


def difficulty_class(difficulty: np.ndarray) -> np.ndarray:
    """Each course's column of :func:`difficulty_table` (its difficulty, or the unknown column)."""
    return np.where(difficulty >= 0, difficulty, len(DIFFICULTY_LEVELS))


def _known_or_half(values: np.ndarray | None, at, n: int) -> np.ndarray:
    """``values[at]`` (of ``n``), 0.5 where unknown: NaN, or no values at all."""
    picked = np.full(n, np.nan)[at] if values is None else values[at]
    return np.where(np.isfinite(picked), picked, 0.5)


class LevelMatch(Recommender):
    """The level term as a model of its own (a component of the hybrids)."""

    name = "level"
    state_keys = ("targets",)

    def __init__(self, signal: str = "difficulty"):
        if signal not in SIGNALS:
            raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")
        self.signal = signal
        self.params = {"signal": signal}

    def fit(self, data: TrainData, targets: np.ndarray | None = None) -> "LevelMatch":
        """``targets`` replaces t_s (e.g. equation 21's target difficulty, 0-2; NaN falls back to t_s)."""
        super().fit(data)
        self.targets = level_targets(data)
        if targets is not None:
            self.targets = np.where(np.isfinite(targets), targets, self.targets)
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        if self.signal == "difficulty":
            return self._difficulty(rows)
        if self.signal == "intensity":
            return self._intensity(rows)
        out = self._difficulty(rows)  # float64, whatever the labels' dtype
        out += self._intensity(rows)
        out /= 2
        return out

    def _difficulty(self, rows: np.ndarray) -> np.ndarray:
        """Gathered from a table of each learner's value at every difficulty level (``take``: a sixth of
        the time of fancy indexing at 2,048 x 5,000)."""
        return np.take(difficulty_table(self.targets[rows]), difficulty_class(self.data.difficulty), axis=1)

    def _intensity(self, rows: np.ndarray) -> np.ndarray:
        """a * i + (1 - a) * (1 - i), computed as (2a - 1) * i + (1 - a): two passes over the batch, not
        four."""
        adaptive = _known_or_half(self.data.p_adaptive, rows, self.data.shape[0])  # the batch's rows only
        intensive = _known_or_half(self.data.p_intensive, slice(None), self.data.shape[1])
        out = np.multiply.outer(2 * adaptive - 1, intensive)
        out += (1 - adaptive)[:, None]
        return out
