"""ALS warm start for the nightly job: how many iterations from yesterday's factors match a cold fit.

Usage: python benchmarks/bench_warm_start.py [--size S] [--new-share 0.01] [--factors 32] [--iterations 15]

The nightly scenario on a synthetic size: validation holds each learner's latest interaction (learners with
3 or more); "today" trains on the rest, "yesterday" on today's rows minus the newest ``--new-share`` of
them by time (so some learners and courses are new today). A cold fit today (``--iterations``, two seeds:
their difference is the noise a warm start is measured against) is compared with fits that start from
yesterday's factors (matched by id) and run 1-8 iterations. Printed per fit: seconds and validation
nDCG@10, and the fewest warm iterations within 0.002 of the cold fit.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import sparse

from common import print_table
from coursepilot.evaluation.protocol import evaluate
from coursepilot.models.base import TrainData
from coursepilot.models.factors import Factorisation
from coursepilot.synthetic import SIZES, generate

TOLERANCE = 0.002  # issue 23: warm within this validation nDCG@10 of a cold fit
WARM_ITERATIONS = (1, 2, 3, 5, 8)


def train_data(rows: pd.DataFrame) -> TrainData:
    """Binary learner x course matrix of ``rows``, indexed by the ids present in them."""
    r, learners = pd.factorize(rows["learner_id"])
    c, courses = pd.factorize(rows["course_id"])
    matrix = sparse.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(learners), len(courses)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return TrainData(np.asarray(learners), np.asarray(courses), matrix, difficulty=np.full(len(courses), -1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="S", help="synthetic size preset (default S)")
    parser.add_argument(
        "--new-share",
        type=float,
        default=0.01,
        help="share of today's training rows that are new since yesterday (default 0.01)",
    )
    parser.add_argument("--factors", type=int, default=32, help="ALS factors (default 32)")
    parser.add_argument("--iterations", type=int, default=15, help="iterations of a cold fit (default 15)")
    args = parser.parse_args()

    inter = generate(SIZES[args.size])["interactions"].to_pandas().sort_values("ts", kind="stable")
    inter[["learner_id", "course_id"]] = inter[["learner_id", "course_id"]].astype(str)
    latest = inter.groupby("learner_id").cumcount(ascending=False) == 0
    counts = inter.groupby("learner_id")["course_id"].transform("size")
    held = latest & (counts >= 3)
    today_rows, valid_rows = inter[~held], inter[held]
    yesterday_rows = today_rows.iloc[: int(len(today_rows) * (1 - args.new_share))]
    today, yesterday = train_data(today_rows), train_data(yesterday_rows)
    rows, cols = today.learner_index(valid_rows["learner_id"]), today.course_index(valid_rows["course_id"])
    keep = (rows >= 0) & (cols >= 0)
    valid = {int(r): {int(c)} for r, c in zip(rows[keep], cols[keep])}

    settings = dict(factors=args.factors, iterations=args.iterations, regularization=1.0, alpha=2.0)
    start = Factorisation("als", **settings).fit(yesterday).warm_state()
    results = []

    def run(label: str, fit) -> float:
        began = time.perf_counter()
        model = fit()
        seconds = time.perf_counter() - began
        ndcg = evaluate(model, valid, ks=(10,))["ndcg@10"]
        results.append([label, seconds, ndcg])
        return ndcg

    cold = run(f"cold, {args.iterations} iterations", lambda: Factorisation("als", **settings).fit(today))
    run(
        f"cold, {args.iterations} iterations, seed 1",
        lambda: Factorisation("als", **settings, seed=1).fit(today),
    )
    enough = None
    for n in WARM_ITERATIONS:
        ndcg = run(f"warm, {n} iterations", lambda: Factorisation("als", **settings).fit(today, start, n))
        if enough is None and ndcg >= cold - TOLERANCE:
            enough = n
    new_learners = int((yesterday.learner_index(today.learner_ids) < 0).sum())
    added = today.matrix.nnz - yesterday.matrix.nnz
    print_table(
        f"ALS warm start, size {args.size}: {today.matrix.nnz:,} training rows today, {added:,} new "
        f"({new_learners:,} new learners), {len(valid):,} validation learners, {args.factors} factors",
        ["fit", "seconds", "validation nDCG@10", "vs cold"],
        [[label, f"{s:.2f}", f"{n:.4f}", f"{n - cold:+.4f}"] for label, s, n in results],
    )
    print(
        f"fewest warm iterations within {TOLERANCE} of the cold fit: {enough}"
        if enough
        else f"no warm fit up to {max(WARM_ITERATIONS)} iterations came within {TOLERANCE} of the cold fit"
    )


if __name__ == "__main__":
    main()
