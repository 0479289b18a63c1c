"""Item-based collaborative filtering: EASE (closed form) and item-kNN through ``implicit``.

Both score a learner's untaken courses from the courses they took: score = x_u · S with x_u the learner's
training row and S a course x course weight matrix (EASE's B, item-kNN's sparse neighbour similarities).
That shared form is also what explains a recommendation: the taken course with the largest x_u[j] · S[j, c].
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

from ..blas import blas_threads
from ..imports import IMPORTING
from .base import Recommender, TrainData

EASE_COURSES = (
    10_000  # dense course x course solve up to this many courses (four 800 MB float64 arrays at 10,000)
)


def recency_weights(times: sparse.csr_matrix, half_life: float) -> sparse.csr_matrix:
    """2^(-r / half_life) per interaction, r its rank among the learner's own interactions, latest first (r =
    0)."""
    times = times.tocsr()
    counts = np.diff(times.indptr)
    row = np.repeat(np.arange(times.shape[0]), counts)
    order = np.lexsort((-times.data, row))  # by learner, latest first
    rank = np.empty(len(order), dtype=np.float64)
    rank[order] = np.arange(len(order)) - np.repeat(times.indptr[:-1], counts)
    out = times.copy()
    out.data = np.exp2(-rank / half_life).astype(np.float32)
    return out


def spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix through its Cholesky factor (LAPACK potrf / potri:
    2.8 vs 4.8 s for ``np.linalg.inv`` at 5,000 x 5,000 on 2 threads); ``matrix`` is overwritten."""
    with blas_threads(2):
        # symmetric: the transpose is the same matrix, Fortran-ordered, so LAPACK works in place
        factor, info = lapack.dpotrf(matrix.T, lower=False, overwrite_a=True)
        if info == 0:
            factor, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"the matrix is not positive definite (LAPACK info {info})")
    # potri fills the upper triangle only
    inverse = np.triu(factor)
    inverse += np.triu(factor, 1).T
    return inverse


class ItemBased(Recommender):
    """score(u, c) = Σ_j x_uj S_jc over the courses j the learner took (``weights`` is S).

    With ``recency`` > 0 (and interaction times) x_uj is also weighted 2^(-r / recency), r the rank of
    course j among the learner's interactions, latest first: what a learner took last counts most.
    """

    weights: np.ndarray | sparse.csr_matrix
    state_keys = ("weights",)
    score_params = ("recency",)
    recency: float = 0.0

    def history(self, rows: np.ndarray) -> sparse.csr_matrix:
        return self.data.matrix[rows]

    def learner_rows(self, rows: np.ndarray) -> sparse.csr_matrix:
        rows = np.asarray(rows)
        history = self.history(rows)
        if self.recency > 0 and self.data.times is not None:
            history = history.multiply(recency_weights(self.data.times[rows], self.recency)).tocsr()
        return history

    def score(self, rows: np.ndarray) -> np.ndarray:
        scores = self.learner_rows(rows) @ self.weights
        return scores.toarray() if sparse.issparse(scores) else np.asarray(scores)

    def evidence(self, row: int, course: int) -> tuple[int, float]:
        """(taken course column, its share of the score) that contributes most to ``course`` for learner
        ``row``."""
        taken = self.learner_rows(np.array([row]))
        cols, x = taken.indices, taken.data
        if not len(cols):
            return -1, 0.0
        # the taken courses' rows only: a column of the whole CSR matrix costs a pass over all of it
        if sparse.issparse(self.weights):
            parts = x * self.weights[cols][:, [course]].toarray().ravel()
        else:
            parts = x * self.weights[cols, course]
        best = int(np.argmax(parts))
        total = parts.sum()
        return int(cols[best]), float(parts[best] / total) if total > 0 else 0.0


class EASE(ItemBased):
    """Embarrassingly shallow autoencoder: B = I - P / diag(P), P = (XᵀX + λI)⁻¹, diag(B) = 0.

    X is the binary learner x course matrix of training interactions. Up to ``EASE_COURSES`` courses; above
    that the dense solve does not fit the size-L memory budget and item-kNN (sparse) is the item-based model.
    """

    name = "ease"

    def __init__(self, regularization: float = 100.0, recency: float = 0.0):
        self.regularization, self.recency = regularization, recency
        self.params = {"regularization": regularization, "recency": recency}

    def fit(self, data: TrainData) -> "EASE":
        super().fit(data)
        n = data.shape[1]
        if n > EASE_COURSES:
            raise ValueError(
                f"EASE solves a dense {n:,} x {n:,} system: above {EASE_COURSES:,} courses use item_knn"
            )
        binary = self.binary(data.matrix)
        gram = np.asarray((binary.T @ binary).toarray(), dtype=np.float64)
        gram[np.diag_indices(n)] += self.regularization
        inverse = spd_inverse(gram)
        del gram  # the Cholesky factor's buffer
        inverse /= -np.diag(inverse).copy()  # in place: B = -P / diag(P)
        inverse[np.diag_indices(n)] = 0.0
        self.weights = inverse.astype(np.float32)
        return self

    @staticmethod
    def binary(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
        out = matrix.tocsr(copy=True)
        out.data = np.ones_like(out.data, dtype=np.float32)
        return out

    def history(self, rows: np.ndarray) -> sparse.csr_matrix:
        return self.binary(self.data.matrix[rows])


class ItemKNN(ItemBased):
    """implicit's item-item recommenders on the confidence matrix: each course keeps its ``neighbours`` most
    similar courses (``similarity``: cosine, or BM25 with K1 / B), and a learner's score is x_u · S."""

    def __init__(
        self,
        similarity: str = "bm25",
        neighbours: int = 100,
        k1: float = 1.2,
        b: float = 0.75,
        recency: float = 0.0,
    ):
        if similarity not in ("cosine", "bm25"):
            raise ValueError("similarity is cosine or bm25")
        self.name, self.recency = "item_knn", recency
        self.params = {
            "similarity": similarity,
            "neighbours": neighbours,
            "k1": k1,
            "b": b,
            "recency": recency,
        }

    def fit(self, data: TrainData) -> "ItemKNN":
        with IMPORTING:
            from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
            from implicit.utils import ParameterWarning

        super().fit(data)
        p = self.params
        model = (
            CosineRecommender(K=p["neighbours"])
            if p["similarity"] == "cosine"
            else BM25Recommender(K=p["neighbours"], K1=p["k1"], B=p["b"])
        )
        with warnings.catch_warnings():  # implicit's item-item fit calls no BLAS: no limit to set
            # implicit converts its own weighting to CSR
            warnings.simplefilter("ignore", category=ParameterWarning)
            model.fit(data.matrix.astype(np.float32), show_progress=False)
        self.weights = sparse.csr_matrix(model.similarity, dtype=np.float32)
        return self
