"""Matrix factorisation with ``implicit``: ALS and BPR on the confidence matrix (first paper, eq. 5)."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pandas as pd

from ..blas import blas_threads
from ..imports import IMPORTING
from .base import Recommender, TrainData

# iterations of a fit that starts from the last factors (the nightly job), by algorithm;
# benchmarks/bench_warm_start.py (BENCHMARKS.md). ALS: 1 already stays within 0.002 validation nDCG@10 of a
# cold fit at S and M (S: -0.0016, near the budget), 2 leaves a margin. BPR at M (100 cold epochs, validation
# chose a learning rate of 0.003): 5 epochs -0.0003 (two cold seeds differ by 0.0017), 10 epochs -0.0034;
# more epochs score lower still: the cold fit is already past BPR's best there. Chained night after night, the
# epochs add up (six nights at M: -0.0015, -0.0023, -0.0034, -0.0058, -0.0065, -0.0072), so each night's BPR
# starts from the last cold fit instead (Factorisation.next_start): within 0.0015 of a cold fit all six nights
WARM_ITERATIONS = {"als": 2, "bpr": 5}
# below this share of the interactions with both ids in the last factors (a swapped source, reformatted ids) a
# warm start is mostly random rows: the fit starts cold
WARM_COVERAGE = 0.9


class Factorisation(Recommender):
    """R ≈ P · Qᵀ; the score of (u, i) is P_u · Q_i."""

    state_keys = ("user_factors", "item_factors")

    def __init__(
        self,
        algorithm: str = "als",
        factors: int = 16,
        iterations: int = 15,
        regularization: float = 1.0,
        learning_rate: float = 0.05,
        alpha: float = 2.0,
        seed: int = 0,
    ):
        if algorithm not in ("als", "bpr"):
            raise ValueError("algorithm is als or bpr")
        self.name = algorithm
        self.params = dict(
            factors=factors,
            iterations=iterations,
            regularization=regularization,
            learning_rate=learning_rate,
            alpha=alpha,
            seed=seed,
        )
        self._start: tuple[dict | None, int | None] = (None, None)  # what the next fit starts from
        self._started_from: dict | None = None  # what the last fit started from

    def fit(
        self, data: TrainData, start: dict | None = None, iterations: int | None = None
    ) -> "Factorisation":
        """``start``: an earlier fit's :meth:`warm_state`, whose factors this fit starts from (matched by
        learner and course id; new ones start as implicit starts them); ``iterations`` replaces the configured
        count (a warm start needs few: ``benchmarks/bench_warm_start.py``). Without them, what
        :meth:`starting_from` set."""
        super().fit(data)
        if start is None:
            start, iterations = self._start[0], iterations or self._start[1]
        self._start, self._started_from = (None, None), start  # a later fit starts cold unless told
        p = {**self.params, "iterations": iterations or self.params["iterations"]}
        # implicit parallelises ALS itself (BLAS threads would oversubscribe); BPR's SGD calls no BLAS
        with blas_threads(1) if self.name == "als" else nullcontext():
            if self.name == "als":
                with IMPORTING:
                    from implicit.cpu.als import AlternatingLeastSquares

                model = AlternatingLeastSquares(
                    factors=p["factors"],
                    regularization=p["regularization"],
                    alpha=p["alpha"],
                    iterations=p["iterations"],
                    random_state=p["seed"],
                )
            else:
                with IMPORTING:
                    from implicit.cpu.bpr import BayesianPersonalizedRanking

                # one thread: implicit's multithreaded SGD is not reproducible, and the same seed must give
                # the same model
                model = BayesianPersonalizedRanking(
                    factors=p["factors"],
                    learning_rate=p["learning_rate"],
                    regularization=p["regularization"],
                    iterations=p["iterations"],
                    random_state=p["seed"],
                    num_threads=1,
                )
            if start is not None:
                rng = np.random.default_rng(p["seed"])
                # BPR's last column is a bias: 1 for a learner, learnt for a course (implicit starts it at 0)
                bias = (1.0, 0.0) if self.name == "bpr" else (None, None)
                model.user_factors = aligned(
                    start["learner_ids"], start["user_factors"], data.learner_ids, rng, bias[0]
                )
                model.item_factors = aligned(
                    start["course_ids"], start["item_factors"], data.course_ids, rng, bias[1]
                )
            model.fit(data.matrix, show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def starting_from(self, start: dict | None, iterations: int | None = None) -> "Factorisation":
        """Make the next :meth:`fit` start from ``start`` (a :meth:`warm_state`) with ``iterations``."""
        self._start = (start, iterations)
        return self

    def start_fits(self, start: dict, data: TrainData) -> str | None:
        """Why ``start`` cannot seed a fit of this model on ``data`` (None when it can): its factor count
        differs, it carries no ids, or under ``WARM_COVERAGE`` of the interactions match its ids."""
        if "learner_ids" not in start:
            return "the last factors carry no ids"
        width = self.params["factors"] + (self.name == "bpr")  # BPR keeps a bias column
        if start["item_factors"].shape[1] != width:
            return "the last factors have another factor count"
        coverage = warm_coverage(start, data)
        if coverage < WARM_COVERAGE:
            return f"only {coverage:.1%} of the interactions match the last factors' ids"
        return None

    def next_start(self) -> dict[str, np.ndarray]:
        """What the next warm fit starts from: this fit's :meth:`warm_state`, except that a BPR fit that
        itself started warm passes on the factors it started from, so that BPR's epochs do not add up night
        after night (its SGD overfits as they do; ALS converges instead)."""
        if self.name == "bpr" and self.started_warm:
            return self._started_from
        return self.warm_state()

    @property
    def started_warm(self) -> bool:
        """Whether the last fit started from earlier factors."""
        return self._started_from is not None

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.user_factors[rows] @ self.item_factors.T

    def warm_state(self) -> dict[str, np.ndarray]:
        """The factors with the learner and course ids they belong to: what a later fit starts from."""
        return {
            **self.state(),
            "learner_ids": self.data.learner_ids.astype(str),
            "course_ids": self.data.course_ids.astype(str),
        }


def aligned(
    ids: np.ndarray,
    factors: np.ndarray,
    new_ids: np.ndarray,
    rng: np.random.Generator,
    last_column: float | None = None,
) -> np.ndarray:
    """``factors`` (rows keyed by ``ids``) re-indexed to ``new_ids``; an id without a row starts as implicit
    starts every row (uniform in [0, 0.01)), with ``last_column`` in its last column when given."""
    at = pd.Index(ids).get_indexer(np.asarray(new_ids).astype(str))
    out = rng.random((len(new_ids), factors.shape[1]), dtype=np.float32) * 0.01
    if last_column is not None:
        out[:, -1] = last_column
    out[at >= 0] = factors[at[at >= 0]]
    return out


def warm_coverage(start: dict, data: TrainData) -> float:
    """Share of ``data``'s interactions whose learner and course both have a row in ``start``."""
    learners = pd.Index(start["learner_ids"]).get_indexer(np.asarray(data.learner_ids).astype(str)) >= 0
    courses = pd.Index(start["course_ids"]).get_indexer(np.asarray(data.course_ids).astype(str)) >= 0
    matrix = data.matrix.tocsr()
    rows = np.repeat(learners, np.diff(matrix.indptr))
    return float((rows & courses[matrix.indices]).mean()) if matrix.nnz else 0.0
