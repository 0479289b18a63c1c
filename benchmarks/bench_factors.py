"""Factor models: our ALS fit against a bare `implicit` call on the same matrix, and batch top-10 throughput.

Usage: python benchmarks/bench_factors.py [--size M] [--factors 64] [--iterations 15] [--repeats 3]

The matrix is the synthetic size's interactions as ones (the confidence weighting is the same for
both sides, so it is left out). "Overhead" is our fit time over the bare fit time (best of
``--repeats``). Throughput: learners per second of top-10 recommendations that skip the courses a
learner took, for every learner, for ALS and for the hybrid (ALS + MiniLM-like content, random
unit vectors here since only the arithmetic is timed).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import threadpool_limits

from common import best_of, print_table
from coursepilot.models.base import TrainData
from coursepilot.models.factors import Factorisation
from coursepilot.models.hybrid import Hybrid
from coursepilot.models.simple import Content
from coursepilot.synthetic import SIZES, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size",
        choices=list(SIZES),
        default="M",
        help="synthetic size whose interactions are factorised (default M)",
    )
    parser.add_argument("--factors", type=int, default=64, help="latent factors (default 64)")
    parser.add_argument("--iterations", type=int, default=15, help="ALS iterations (default 15)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="fits per side; the best time counts (default 3)"
    )
    args = parser.parse_args()

    inter = generate(SIZES[args.size])["interactions"].to_pandas()
    rows, learners = pd.factorize(inter["learner_id"])
    cols, courses = pd.factorize(inter["course_id"])
    matrix = sparse.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(learners), len(courses))
    )
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(courses), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    data = TrainData(
        np.asarray(learners), np.asarray(courses), matrix, vectors, None, np.full(len(courses), -1), None
    )

    def bare():
        from implicit.cpu.als import AlternatingLeastSquares

        with threadpool_limits(1, "blas"):
            AlternatingLeastSquares(
                factors=args.factors,
                regularization=1.0,
                alpha=2.0,
                iterations=args.iterations,
                random_state=0,
            ).fit(matrix, show_progress=False)

    ours = Factorisation(
        "als", factors=args.factors, iterations=args.iterations, regularization=1.0, alpha=2.0
    )
    bare_s = best_of(args.repeats, bare)
    ours_s = best_of(args.repeats, lambda: ours.fit(data))
    print_table(
        f"ALS fit, {matrix.shape[0]:,} x {matrix.shape[1]:,}, {matrix.nnz:,} interactions, {args.factors} "
        f"factors, {args.iterations} iterations (best of {args.repeats})",
        ["fit", "seconds", "vs bare"],
        [["bare implicit", bare_s, 1.0], ["coursepilot ALS", ours_s, ours_s / bare_s]],
    )

    everyone = np.arange(matrix.shape[0])
    hybrid = Hybrid(ours, Content("minilm"), alpha=0.9, level_weight=0.4).fit(data)
    out = []
    for name, model in (("als", ours), ("hybrid", hybrid)):
        seconds = best_of(1, lambda: model.recommend(everyone, 10))
        out.append([name, f"{len(everyone):,}", seconds, len(everyone) / seconds])
    print_table(
        "Batch top-10 for every learner (courses already taken skipped)",
        ["model", "learners", "seconds", "learners/s"],
        out,
    )


if __name__ == "__main__":
    main()
