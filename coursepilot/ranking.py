"""Ranking helpers shared by the models, the peer rankings, serving and the evaluation: the top k of each row,
per-row min-max normalisation, and the relevant courses of each learner."""

from __future__ import annotations

import numpy as np
from scipy import sparse

TORCH_TOPK_CELLS = (
    100_000  # from this many scores up, torch.topk ranks them (3.5x numpy's speed at 2,048 x 5,000)
)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` highest scores per row, best first (NaN ranks last; ties in either order).

    Batches go to ``torch.topk`` (multi-threaded; BENCHMARKS.md "Ranking"); a few rows, like one serving
    request, stay in numpy so that answering them does not import torch.
    """
    if scores.size >= TORCH_TOPK_CELLS:
        import torch

        # min is NaN exactly when a score is (one pass; torch's NaN mask costs 3x the ranking)
        if np.isnan(scores.min()):
            scores = np.where(np.isnan(scores), -np.inf, scores)
        return torch.topk(
            torch.from_numpy(np.require(scores, requirements=["C", "W"])), k, dim=1
        ).indices.numpy()
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(-scores, part, axis=1).argsort(axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def minmax_rows(scores: np.ndarray) -> np.ndarray:
    """Per-learner min-max normalisation over the courses (the hybrid blends normalised parts)."""
    low, high = scores.min(axis=1, keepdims=True), scores.max(axis=1, keepdims=True)
    # every score finite: nothing to mask, no NaN to clear
    if np.isfinite(low).all() and np.isfinite(high).all():
        out = (scores - low).astype(np.result_type(scores, np.float32), copy=False)
        out /= np.where(high > low, high - low, 1.0)
        return out
    finite = np.where(np.isfinite(scores), scores, np.nan)  # the extremes over the finite scores only
    low, high = np.nanmin(finite, axis=1, keepdims=True), np.nanmax(finite, axis=1, keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    return np.nan_to_num((scores - low) / span, nan=0.0)


def relevant_sets(matrix: sparse.csr_matrix) -> dict[int, set[int]]:
    """{learner row: course columns} of the non-empty rows of a matrix."""
    matrix = matrix.tocsr()
    # Python lists: slicing them is 3x faster
    indptr, indices = matrix.indptr.tolist(), matrix.indices.tolist()
    return {
        r: set(indices[indptr[r] : indptr[r + 1]]) for r in np.flatnonzero(np.diff(matrix.indptr)).tolist()
    }
