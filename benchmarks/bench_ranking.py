"""Ranking a batch: the top 10 of every row of a learners x courses score matrix, numpy against torch.topk.

Usage: python benchmarks/bench_ranking.py [--rows 2048] [--courses 500 2000 5000] [--repeats 5]

Every evaluation, tuning grid and peer ranking ends in ``coursepilot.ranking.top_k`` over
batches like these. "numpy" is its path for a few rows (``argpartition``, then a sort of the k best;
as when serving one learner), "torch" its path for batches (``torch.topk``), each forced here on the
same arrays. Milliseconds per batch, best of ``--repeats``; the two must choose the same scores.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from common import best_of, print_table
from coursepilot import ranking


def forced(path: str):
    """``top_k`` forced onto one of its two paths."""

    def run(scores: np.ndarray, k: int) -> np.ndarray:
        ranking.TORCH_TOPK_CELLS = 0 if path == "torch" else scores.size + 1
        try:
            return ranking.top_k(scores, k)
        finally:
            ranking.TORCH_TOPK_CELLS = cells

    cells = ranking.TORCH_TOPK_CELLS
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=2048, help="learners per batch (default 2048, the evaluation's batch)"
    )
    parser.add_argument(
        "--courses", type=int, nargs="+", default=[500, 2000, 5000], help="catalogue sizes (default: S, M, L)"
    )
    parser.add_argument("--k", type=int, default=10, help="how many to keep per row (default 10)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per cell; the best counts (default 5)"
    )
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    rows = []
    for courses in args.courses:
        for dtype in (np.float64, np.float32):
            scores = rng.standard_normal((args.rows, courses)).astype(dtype)
            numpy_top, torch_top = forced("numpy"), forced("torch")
            same = np.array_equal(
                np.take_along_axis(scores, numpy_top(scores, args.k), axis=1),
                np.take_along_axis(scores, torch_top(scores, args.k), axis=1),
            )
            slow, fast = (
                1000 * best_of(args.repeats, lambda f=f: f(scores, args.k)) for f in (numpy_top, torch_top)
            )
            rows.append([courses, np.dtype(dtype).name, slow, fast, slow / fast, same])
    print_table(
        f"top {args.k} of {args.rows:,} rows, {torch.get_num_threads()} torch threads (ms per batch)",
        ["courses", "dtype", "numpy", "torch.topk", "speed-up", "same scores"],
        rows,
    )


if __name__ == "__main__":
    main()
