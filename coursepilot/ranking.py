"""Ranking helpers shared by the models, the peer rankings, serving and the evaluation: the top k of each row,
per-row min-max normalisation, and the relevant courses of each learner."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import sparse

from .imports import module

SCORING_CELLS = 1 << 20
"""Scores (learners x courses) computed per batch by the models' batch loops: about a million,
arrays of 4-8 MB. The C library maps every allocation above 32 MB afresh, and the page faults of a fresh
map cost more than the arithmetic done in it: at 5,055 courses the fusion ranked 20,480 learners in 3.09 s
in batches of 2,048 and in 1.68 s in batches of 207 (benchmarks/bench_scoring_batches.py)."""


def batch_rows(n_courses: int) -> int:
    """Learners per batch so that a batch holds about ``SCORING_CELLS`` scores."""
    return max(1, SCORING_CELLS // max(n_courses, 1))


TORCH_TOPK_CELLS = (
    100_000  # from this many scores up, torch.topk ranks them (3.5x numpy's speed at 2,048 x 5,000)
)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` highest scores per row, best first (NaN ranks last; ties in either order).

    Batches go to ``torch.topk`` (multi-threaded; BENCHMARKS.md "Ranking"); a few rows, like one serving
    request, stay in numpy so that answering them does not import torch.
    """
    if scores.size >= TORCH_TOPK_CELLS:
        torch = module("torch")
        # min is NaN exactly when a score is (one pass; torch's NaN mask costs 3x the ranking)
        if np.isnan(scores.min()):
            scores = np.where(np.isnan(scores), -np.inf, scores)
        return torch.topk(
            torch.from_numpy(np.require(scores, requirements=["C", "W"])), k, dim=1
        ).indices.numpy()
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(-scores, part, axis=1).argsort(axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def minmax_rows(scores: np.ndarray, weight: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """Per-learner min-max normalisation over the courses, times ``weight`` (the hybrid blends weighted
    normalised parts), into ``out`` when given (an array of the result's shape and dtype)."""
    low, high = scores.min(axis=1, keepdims=True), scores.max(axis=1, keepdims=True)
    dtype = np.result_type(scores, np.float32)
    # every score finite: nothing to mask, no NaN to clear
    if np.isfinite(low).all() and np.isfinite(high).all():
        out = np.subtract(scores, low, out=out, dtype=dtype)
        out /= np.where(high > low, high - low, 1.0)
        if weight != 1:
            out *= dtype.type(weight)
        return out
    normalised = _minmax_finite(scores).astype(dtype, copy=False)
    normalised *= dtype.type(weight)
    if out is None:
        return normalised
    out[...] = normalised
    return out


def _minmax_finite(scores: np.ndarray) -> np.ndarray:
    """:func:`minmax_rows` of scores with non-finite values: over the finite ones, NaN as 0."""
    finite = np.where(np.isfinite(scores), scores, np.nan)  # the extremes over the finite scores only
    low, high = np.nanmin(finite, axis=1, keepdims=True), np.nanmax(finite, axis=1, keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    return np.nan_to_num((scores - low) / span, nan=0.0)


class Relevant(Mapping):
    """{learner row: set of course columns} of the non-empty rows of a sparse matrix, read from the matrix on
    lookup: at a million learners building every set up front costs seconds that a sampled evaluation never
    uses."""

    def __init__(self, matrix: sparse.spmatrix):
        matrix = sparse.csr_matrix(matrix)
        self.pattern = sparse.csr_matrix(
            (np.ones(matrix.nnz, dtype=np.int8), matrix.indices, matrix.indptr), shape=matrix.shape
        )
        self.rows = np.flatnonzero(np.diff(matrix.indptr))

    @classmethod
    def of(cls, relevant: Mapping, shape: tuple[int, int]) -> "Relevant":
        """``relevant`` ({learner row: course columns}) as a :class:`Relevant` (itself when it is one)."""
        if isinstance(relevant, Relevant):
            return relevant
        rows = np.array([r for r, cols in relevant.items() for _ in cols], dtype=np.int64)
        cols = np.array([c for cs in relevant.values() for c in cs], dtype=np.int64)
        return cls.from_pairs(rows, cols, shape)

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> "Relevant":
        return cls(sparse.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=shape))

    def __getitem__(self, row) -> set[int]:
        r, indptr = int(row), self.pattern.indptr
        if not 0 <= r < len(indptr) - 1 or indptr[r] == indptr[r + 1]:
            raise KeyError(row)
        return set(self.pattern.indices[indptr[r] : indptr[r + 1]].tolist())

    def __iter__(self):
        return iter(self.rows.tolist())

    def __len__(self) -> int:
        return len(self.rows)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(learner rows, course columns) of every relevant pair, row by row."""
        indptr = self.pattern.indptr
        return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr)), self.pattern.indices.astype(np.int64)

    def restrict(self, rows: np.ndarray) -> "Relevant":
        """The learners of ``rows`` only, re-keyed to their positions in ``rows``."""
        return Relevant(self.pattern[np.asarray(rows, dtype=np.int64)])


def relevant_sets(matrix: sparse.spmatrix) -> Relevant:
    """{learner row: course columns} of the non-empty rows of a matrix."""
    return Relevant(matrix)
