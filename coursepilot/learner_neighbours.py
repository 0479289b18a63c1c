"""The k most similar learners by cosine of their sparse interaction rows (the second paper's eq. 8).

Up to ``exact_limit`` learners the similarities are computed exactly, a batch of rows at a time.
Above it, all-pairs similarity costs O(learners²), so candidates come from a usearch HNSW index over
a truncated SVD of the rows and are re-scored with the exact sparse cosine: the neighbours and their
weights are exact, only a true neighbour the index misses can be lost (``benchmarks/bench_neighbours.py``
measures that recall). Where only a few rows will be asked (``index=False``), no index is built and
large populations are searched exactly on sparse products: only learners sharing a course with the
row are scored, and a row with fewer than ``k`` such learners gets fewer neighbours (padded with -1).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize

from .imports import IMPORTING
from .ranking import top_k

EXACT_LIMIT = 50_000
SPGEMM_COLUMNS = 131_072  # learners per block of the sparse product (see LearnerNeighbours._sparse_search)


class LearnerNeighbours:
    """Top-``k`` neighbours of any learner row; ``weights(rows)`` gives them as a sparse similarity matrix."""

    def __init__(
        self,
        matrix: sparse.spmatrix,
        k: int = 50,
        exact_limit: int = EXACT_LIMIT,
        svd_dims: int = 128,
        candidates: int = 4,
        seed: int = 0,
        index: bool = True,
        block_columns: int = SPGEMM_COLUMNS,
    ):
        self.unit = normalize(sparse.csr_matrix(matrix, dtype=np.float32), norm="l2", axis=1)
        self.n = self.unit.shape[0]
        self.k = max(0, min(k, self.n - 1))
        self.dense = self.n <= exact_limit
        self.exact = self.dense or not index
        self.pool = min(self.n, candidates * self.k + 1)
        if self.dense:
            self.unit_t = self.unit.T.tocsr()
        elif self.exact:
            self.blocks = [
                (s, self.unit[s : s + block_columns].T.tocsr()) for s in range(0, self.n, block_columns)
            ]
        else:
            with IMPORTING:
                from usearch.index import Index

            dims = max(1, min(svd_dims, self.unit.shape[1] - 1))
            self.reduced = normalize(TruncatedSVD(dims, random_state=seed).fit_transform(self.unit)).astype(
                np.float32
            )
            self.index = Index(ndim=dims, metric="cos", dtype="f32", connectivity=16)
            self.index.add(np.arange(self.n), self.reduced)

    @property
    def kind(self) -> str:
        return (
            ("exact" if self.dense else "exact (sparse)") if self.exact else "usearch-hnsw + exact re-score"
        )

    def search(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(neighbour positions, cosine similarities), each ``(len(rows), k)``, best first; never the row
        itself."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.k == 0:
            return np.zeros((len(rows), 0), np.int64), np.zeros((len(rows), 0), np.float32)
        if self.exact and not self.dense:
            return self._sparse_search(rows)
        if self.exact:
            sims = (self.unit[rows] @ self.unit_t).toarray()
            candidates = np.broadcast_to(np.arange(self.n), sims.shape)
        else:
            found = self.index.search(self.reduced[rows], self.pool)
            candidates = found.keys.astype(np.int64).reshape(len(rows), -1)
            missing = candidates >= self.n  # usearch pads short answers with an out-of-range key
            candidates = np.where(missing, rows[:, None], candidates)
            left, right = self.unit[np.repeat(rows, candidates.shape[1])], self.unit[candidates.ravel()]
            sims = np.asarray(left.multiply(right).sum(axis=1)).reshape(candidates.shape)
        sims = np.where(candidates == rows[:, None], -np.inf, sims)  # a learner is not their own neighbour
        top = top_k(sims, self.k)
        best = np.take_along_axis(sims, top, axis=1)
        return np.take_along_axis(np.asarray(candidates), top, axis=1), np.where(
            np.isfinite(best), best, 0.0
        ).astype(np.float32)

    def _sparse_search(self, rows: np.ndarray, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` over the learners sharing a course with each row (the only ones with cosine > 0).

        The sparse product runs over blocks of ``block_columns`` learners (its accumulator then stays in
        the CPU cache: 4x faster at a million learners); each block's best ``k`` are merged per row.
        """
        found = np.full((len(rows), self.k), -1, dtype=np.int64)
        sims = np.zeros((len(rows), self.k), dtype=np.float32)
        for start in range(0, len(rows), batch):
            block, left = rows[start : start + batch], self.unit[rows[start : start + batch]]
            candidates = np.full((len(block), len(self.blocks), self.k), -1, dtype=np.int64)
            scores = np.full(candidates.shape, -np.inf, dtype=np.float32)
            for b, (offset, right) in enumerate(self.blocks):
                product = (left @ right).tocsr()
                for i, row in enumerate(block):
                    lo, hi = product.indptr[i], product.indptr[i + 1]
                    found_here, score = product.indices[lo:hi] + offset, product.data[lo:hi]
                    keep = (found_here != row) & (score > 0)
                    found_here, score = found_here[keep], score[keep]
                    take = min(self.k, len(found_here))
                    top = (
                        np.argpartition(-score, take - 1)[:take]
                        if take < len(found_here)
                        else np.arange(take)
                    )
                    candidates[i, b, :take], scores[i, b, :take] = found_here[top], score[top]
            candidates, scores = candidates.reshape(len(block), -1), scores.reshape(len(block), -1)
            order = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
            best = np.take_along_axis(scores, order, axis=1)
            found[start : start + len(block)] = np.where(
                np.isfinite(best), np.take_along_axis(candidates, order, axis=1), -1
            )
            sims[start : start + len(block)] = np.where(np.isfinite(best), best, 0.0)
        return found, sims

    def weights(self, rows: np.ndarray) -> sparse.csr_matrix:
        """``(len(rows), learners)``: sim(u, v) for the ``k`` neighbours v of each row u, zero elsewhere."""
        neighbours, sims = self.search(rows)
        # padding carries no weight
        sims, neighbours = np.where(neighbours < 0, 0.0, sims), np.maximum(neighbours, 0)
        indptr = (
            np.arange(0, neighbours.size + 1, max(neighbours.shape[1], 1))
            if neighbours.size
            else np.zeros(len(rows) + 1, int)
        )
        matrix = sparse.csr_matrix((sims.ravel(), neighbours.ravel(), indptr), shape=(len(rows), self.n))
        matrix.eliminate_zeros()
        return matrix
