"""Matrix factorisation with ``implicit``: ALS and BPR on the confidence matrix (first paper, eq. 5)."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from .base import Recommender, TrainData


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

    def fit(self, data: TrainData) -> "Factorisation":
        super().fit(data)
        p = self.params
        with threadpool_limits(1, "blas"):  # implicit parallelises itself; BLAS threads would oversubscribe
            if self.name == "als":
                from implicit.cpu.als import AlternatingLeastSquares

                model = AlternatingLeastSquares(
                    factors=p["factors"],
                    regularization=p["regularization"],
                    alpha=p["alpha"],
                    iterations=p["iterations"],
                    random_state=p["seed"],
                )
            else:
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
            model.fit(data.matrix, show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.user_factors[rows] @ self.item_factors.T
