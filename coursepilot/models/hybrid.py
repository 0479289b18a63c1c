"""The hybrid of the first paper, equation (6), with an optional level-alignment term.

Score(s, c) = alpha * CF(s, c) + (1 - alpha) * sim(c, d) + w * level(s, c), where CF and sim are
min-max normalised per learner over the courses, and level(s, c) = 1 - |t_s - d_c| / 2 rewards
courses whose difficulty d_c (0 beginner .. 2 advanced) is near the learner's target level
t_s = clip(mean difficulty of their training courses + (p_adaptive - 0.5), 0, 2): adaptive learners
are pushed toward harder courses, non-adaptive ones toward foundational ones. Unknown difficulty
scores 0.5. alpha and w are tuned on a validation split carved from training, never on test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse

from ..evaluation.metrics import hit_matrix, metrics_from_hits
from ..ranking import batch_rows, minmax_rows, relevant_sets, top_k
from ..sampling import TUNING_LEARNERS, sample_learners
from ..splits import coded_interactions
from .base import Recommender, TrainData, interaction_matrix, interaction_times
from .level import LevelMatch, difficulty_class, difficulty_table

ALPHAS = tuple(round(a, 2) for a in np.linspace(0, 1, 11))
LEVEL_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)
GRID_CANDIDATES = 100  # per part: each grid point ranks at most twice this many courses per learner (exactly)


class Hybrid(Recommender):
    def __init__(
        self,
        cf: Recommender,
        content: Recommender,
        alpha: float = 0.5,
        level_weight: float = 0.0,
        name: str = "hybrid",
    ):
        self.cf, self.content, self.alpha, self.level_weight, self.name = (
            cf,
            content,
            alpha,
            level_weight,
            name,
        )

    def fit(self, data: TrainData, fit_parts: bool = True, targets: np.ndarray | None = None) -> "Hybrid":
        """``targets`` replaces t_s (see :class:`~coursepilot.models.level.LevelMatch`)."""
        super().fit(data)
        if fit_parts:
            self.cf.fit(data)
            self.content.fit(data)
        self.level_term = LevelMatch().fit(data, targets)
        return self

    def parts(self, rows: np.ndarray, memo: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised CF, normalised content and level-match scores (CF and content scored once per
        ``memo``)."""
        memo = {} if memo is None else memo
        return (
            minmax_rows(self.cf.scored(rows, memo)),
            minmax_rows(self.content.scored(rows, memo)),
            self.level(rows),
        )

    def level(self, rows: np.ndarray) -> np.ndarray:
        return self.level_term.score(rows)

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.score_with(rows, {})

    def score_with(self, rows: np.ndarray, memo: dict) -> np.ndarray:
        cf, content, level = self.parts(rows, memo)
        return self.alpha * cf + (1 - self.alpha) * content + self.level_weight * level


@dataclass
class Tuning:
    alpha: float  # best alpha with the best level weight
    level_weight: float
    valid_ndcg: float
    alpha_without_level: float  # best alpha when the level term is off (the plain equation 6)
    grid: pd.DataFrame  # alpha, level_weight, ndcg@10 on validation

    def choice(self, level: bool) -> tuple[float, float]:
        """(alpha, level weight) of the level-aware or the plain hybrid."""
        return (self.alpha, self.level_weight) if level else (self.alpha_without_level, 0.0)


@dataclass(frozen=True)
class Carve:
    """Training rows held out for tuning (``held``), which rule chose them and how many learners each rule
    holds."""

    held: np.ndarray
    rule: str  # "per_learner" or "platform"
    learners: dict[str, int]  # rule -> validation learners it would hold

    def describe(self) -> str:
        others = "; ".join(
            f"{CARVE_RULES[rule]} would hold {n:,}" for rule, n in self.learners.items() if rule != self.rule
        )
        return f"{CARVE_RULES[self.rule]}, {self.learners[self.rule]:,} validation learners" + (
            f" ({others})" if others else ""
        )


CARVE_RULES = {"per_learner": "each learner's latest rows", "platform": "the platform's latest rows"}


def latest_per_learner(
    train: pd.DataFrame,
    share: float = 0.2,
    min_interactions: int = 3,
    seed: int = 0,
    rank: np.ndarray | None = None,
) -> np.ndarray:
    """Mask of each learner's latest ``share`` of rows (seeded order without ts), for learners with at least
    ``min_interactions``: the test split's own rule.

    ``train``: coded interactions (a ``row`` per learner, see :func:`~coursepilot.splits.coded_interactions`);
    ``rank``: its rows' :func:`time_rank` when already computed.
    """
    learner, n = train["row"].to_numpy(), len(train)
    rank = time_rank(train, seed) if rank is None else rank
    # by learner, then time, then the tie-break (3x np.lexsort's speed)
    order = np.argsort(learner.astype(np.int64) * n + rank)
    starts = np.r_[0, np.flatnonzero(np.diff(learner[order])) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    size, position = np.repeat(sizes, sizes), np.arange(len(order)) - np.repeat(starts, sizes)
    held = np.empty(len(order), dtype=bool)
    held[order] = (size >= min_interactions) & (position >= size - np.maximum(1, np.round(size * share)))
    return held


def latest_on_platform(
    train: pd.DataFrame, share: float = 0.2, seed: int = 0, rank: np.ndarray | None = None
) -> np.ndarray:
    """Mask of the platform's latest ``share`` of rows by time, except each learner's earliest row where every
    one of theirs would go: a held-out learner keeps a history to be scored from, as a test learner does."""
    learner, n = train["row"].to_numpy(), len(train)
    rank = time_rank(train, seed) if rank is None else rank
    held = rank >= n - int(round(n * share))
    kept = np.bincount(learner[~held], minlength=int(learner.max()) + 1 if n else 0)
    lost = np.flatnonzero(held & (kept[learner] == 0))
    lost = lost[np.argsort(rank[lost])]
    held[lost[np.unique(learner[lost], return_index=True)[1]]] = False
    return held


def time_rank(train: pd.DataFrame, seed: int) -> np.ndarray:
    """Each row's position in time order (a seeded random order breaks ties, and stands in without ``ts``)."""
    n = len(train)
    by_time = np.random.default_rng(seed).permutation(n)
    if "ts" in train:
        by_time = by_time[np.argsort(train["ts"].to_numpy()[by_time], kind="stable")]
    rank = np.empty(n, dtype=np.int64)
    rank[by_time] = np.arange(n)
    return rank


def carve_validation(
    train: pd.DataFrame, share: float = 0.2, min_interactions: int = 3, seed: int = 0
) -> Carve:
    """The validation carve of ``train``: of the two rules that mirror the test, the one holding more
    learners.

    Each learner's latest ``share`` is the test split's own rule; where few learners have enough rows for it
    (a platform of cohorts, whose learners take one or two courses a year) the platform's latest ``share`` by
    time also holds what the test holds, the period the recommender will next be judged on. More validation
    learners make the weight searches less noisy. Without timestamps only the first rule applies.
    """
    rank = time_rank(train, seed)  # one sort for both rules
    carves = {"per_learner": latest_per_learner(train, share, min_interactions, seed, rank)}
    if "ts" in train and len(train):
        carves["platform"] = latest_on_platform(train, share, seed, rank)
    learner = train["row"].to_numpy()
    learners = {rule: len(np.unique(learner[held])) for rule, held in carves.items()}
    rule = max(learners, key=lambda r: (learners[r], r == "per_learner"))  # a tie keeps the test's own rule
    return Carve(carves[rule], rule, learners)


class Validation(NamedTuple):
    fit_data: TrainData  # training minus the carve
    valid: dict  # {learner row: validation course columns}
    carve: Carve


def validation_data(
    con, data: TrainData, rating_scale, share: float = 0.2, seed: int = 0, train: pd.DataFrame | None = None
) -> Validation:
    """Training data minus the validation carve, and the carve, from ``train`` only
    (:func:`carve_validation`); ``train``: its coded rows when the caller has read them
    (:func:`~coursepilot.models.base.read_train`)."""
    if train is None:
        train = coded_interactions(con, ("train",), data.learner_ids, data.course_ids)
    fit, times, held, carve = carved_matrices(train, data.shape, rating_scale, share, seed)
    return Validation(data.with_matrix(fit, times), relevant_sets(held), carve)


def carved_matrices(
    train: pd.DataFrame, shape: tuple[int, int], rating_scale, share: float = 0.2, seed: int = 0
) -> tuple[sparse.csr_matrix, sparse.csr_matrix | None, sparse.csr_matrix, Carve]:
    """(confidence matrix and times of ``train`` minus the validation carve, the carve's confidence matrix,
    the carve), from the coded training rows."""
    carve = carve_validation(train, share, seed=seed)
    kept, held = train[~carve.held], train[carve.held]
    return (
        interaction_matrix(kept, shape, rating_scale),
        interaction_times(kept, shape),
        interaction_matrix(held, shape, rating_scale),
        carve,
    )


def tune(
    hybrid: Hybrid,
    fit_data: TrainData,
    valid: dict,
    alphas=ALPHAS,
    level_weights=LEVEL_WEIGHTS,
    batch: int | None = None,
    max_learners: int = TUNING_LEARNERS,
    seed: int = 0,
    fit_parts: bool = True,
) -> Tuning:
    """Grid-search alpha and the level weight by nDCG@10 on ``valid`` ({learner row: set of course columns}).

    ``fit_data`` must not contain the validation interactions (nor, of course, any test one). Above
    ``max_learners`` validation learners a seeded random sample of that many is scored: the grid's
    ranking does not need more, and the cost no longer grows with the number of learners.
    ``fit_parts=False`` when the CF and content parts are already fitted on ``fit_data`` (shared by several
    grids).
    """
    hybrid.fit(fit_data, fit_parts=fit_parts)
    batch = batch or batch_rows(fit_data.shape[1])
    valid = sample_learners(valid, max_learners, seed)
    rows = np.array(sorted(valid))
    sets = [valid[int(r)] for r in rows]
    n_relevant = np.array([len(x) for x in sets])
    # weight 0 is always tried: the plain equation (6) alpha is the best of its row
    points = [(alpha, weight) for alpha in alphas for weight in dict.fromkeys((*level_weights, 0.0))]
    tops = [[] for _ in points]
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        cf, content, level = (p.astype(np.float32) for p in hybrid.parts(part))
        for point, top in zip(
            tops, blend_tops(cf, content, level, fit_data.matrix[part].toarray() > 0, points)
        ):
            point.append(top)
    results = [
        (
            alpha,
            weight,
            _mean_ndcg(top, sets, n_relevant),
        )
        for (alpha, weight), top in zip(points, tops)
    ]
    grid = pd.DataFrame(results, columns=["alpha", "level_weight", "ndcg@10"])
    best = grid.sort_values(["ndcg@10", "level_weight"], ascending=[False, True]).iloc[0]
    plain = grid[grid["level_weight"] == 0].sort_values("ndcg@10", ascending=False).iloc[0]
    return Tuning(
        float(best["alpha"]), float(best["level_weight"]), float(best["ndcg@10"]), float(plain["alpha"]), grid
    )


def level_targets_scorer(hybrid: Hybrid, fit_data: TrainData, valid: dict, batch: int | None = None):
    """Validation nDCG@10 of the fitted ``hybrid`` as a function of its level targets (t_s per ``fit_data``
    row; None: the learner labels'), for a grid over targets (eq. 21's delta and theta).

    CF and content are scored once. The level term takes one value per learner and difficulty class
    (:func:`~coursepilot.models.level.difficulty_table`), so it never reorders the courses of one class:
    a learner's top 10 lies among the 10 best unseen courses of each class by CF and content alone. Each
    grid point ranks only those (at most 40 per learner), the same top 10 as ranking every course.
    """
    rows = np.array(sorted(valid), dtype=np.int64)
    batch = batch or batch_rows(fit_data.shape[1])
    sets = [valid[int(r)] for r in rows]
    n_relevant = np.array([len(s) for s in sets])
    classes = difficulty_class(fit_data.difficulty)
    members = [np.flatnonzero(classes == c) for c in np.unique(classes)]
    columns, fixed = [], []  # per learner: the candidates and their CF + content score
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        cf, content, _ = hybrid.parts(part)
        blend = hybrid.alpha * cf + (1 - hybrid.alpha) * content
        blend[fit_data.matrix[part].nonzero()] = -np.inf
        best = [cols[top_k(blend[:, cols], min(10, len(cols)))] for cols in members]
        columns.append(np.hstack(best))
        fixed.append(np.take_along_axis(blend, columns[-1], axis=1))
    columns = np.vstack(columns) if columns else np.empty((0, 0), np.int64)
    fixed = np.vstack(fixed) if fixed else np.empty((0, 0))
    k = min(10, columns.shape[1])

    def ndcg(targets: np.ndarray | None) -> float:
        level = LevelMatch().fit(fit_data, targets)
        match = np.take_along_axis(difficulty_table(level.targets[rows]), classes[columns], axis=1)
        order = np.argsort(-(fixed + hybrid.level_weight * match), axis=1, kind="stable")[:, :k]
        return _mean_ndcg([np.take_along_axis(columns, order, axis=1)], sets, n_relevant)

    return ndcg


def _mean_ndcg(tops: list[np.ndarray], sets: list[set], n_relevant: np.ndarray) -> float:
    """Mean nDCG@10 of the ranked rows ``tops`` (batches of learners); 0.0 without a validation learner."""
    if not sets:
        return 0.0
    return float(metrics_from_hits(hit_matrix(np.vstack(tops), sets), n_relevant, (10,))["ndcg@10"].mean())


def blend_tops(
    cf: np.ndarray,
    content: np.ndarray,
    level: np.ndarray,
    seen: np.ndarray,
    points,
    k: int = 10,
    candidates: int = GRID_CANDIDATES,
) -> list[np.ndarray]:
    """Top-``k`` unseen columns of alpha*cf + (1-alpha)*content + w*level per row, for each (alpha, w) of
    ``points``.

    The same ranking as sorting every course for every point, but each point ranks only the candidates:
    each row's ``candidates`` best unseen courses by CF and by content. Any other unseen course scores at
    most alpha*cf_N + (1-alpha)*content_N + w*max(level), with cf_N and content_N the N-th best values;
    rows whose k-th candidate score beats that bound are exact, the rest are ranked over every course.
    """
    n = cf.shape[1]
    k = min(k, n)
    if 2 * candidates >= n:
        return [
            _ranked(alpha * cf + (1 - alpha) * content + weight * level, seen, k) for alpha, weight in points
        ]
    index, bounds = [], []
    for part in (cf, content):
        unseen = np.where(seen, -np.inf, part)
        best = np.argpartition(-unseen, candidates - 1, axis=1)[:, :candidates]
        index.append(best)
        bounds.append(np.take_along_axis(unseen, best, axis=1).min(axis=1))
    index = np.sort(np.hstack(index), axis=1)
    excluded = np.take_along_axis(seen, index, axis=1)
    excluded[:, 1:] |= index[:, 1:] == index[:, :-1]  # a course that is a candidate twice counts once
    cf_c, content_c, level_c = (np.take_along_axis(x, index, axis=1) for x in (cf, content, level))
    top_level = np.where(seen, -np.inf, level).max(axis=1)
    # fewer unseen courses than candidates: all are in
    everything = np.isneginf(bounds[0]) | np.isneginf(bounds[1])
    out = []
    for alpha, weight in points:
        blend = alpha * cf_c + (1 - alpha) * content_c + weight * level_c
        local = _ranked(blend, excluded, k)  # sets the excluded candidates to -inf
        kth = np.take_along_axis(blend, local[:, -1:], axis=1)[:, 0]
        with np.errstate(invalid="ignore"):
            bound = np.where(
                everything, -np.inf, alpha * bounds[0] + (1 - alpha) * bounds[1] + weight * top_level
            )
        top = np.take_along_axis(index, local, axis=1)
        rest = ~(kth > bound)
        if rest.any():
            top[rest] = _ranked(
                alpha * cf[rest] + (1 - alpha) * content[rest] + weight * level[rest], seen[rest], k
            )
        out.append(top)
    return out


def _ranked(scores: np.ndarray, excluded: np.ndarray, k: int) -> np.ndarray:
    scores[excluded] = -np.inf
    return top_k(scores, k)
