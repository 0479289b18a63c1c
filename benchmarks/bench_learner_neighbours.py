"""Learner neighbours (eq. 8) at scale: exact top-k against the HNSW path, and what it does to user-kNN.

Usage: python benchmarks/bench_learner_neighbours.py [--size M] [--learners 20000]

On the synthetic size's interactions, each learner's latest 20% (by time) are held out. User-kNN
(k = 50) is fitted once with exact neighbours and once with the HNSW path (128-d SVD, 4k candidates,
exact re-score), and both are scored on the same sample of held-out learners: time to build, time
to score, the share of the exact top-50 similarity mass the HNSW neighbours keep, and nDCG@10.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import sparse

from common import print_table
from coursepilot.evaluation.protocol import evaluate
from coursepilot.learner_neighbours import LearnerNeighbours
from coursepilot.models.base import TrainData
from coursepilot.models.simple import UserKNN
from coursepilot.ranking import relevant_sets
from coursepilot.synthetic import SIZES, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="M", help="synthetic size (default M)")
    parser.add_argument(
        "--learners", type=int, default=20_000, help="held-out learners scored (default 20000)"
    )
    args = parser.parse_args()

    inter = generate(SIZES[args.size])["interactions"].to_pandas().sort_values(["learner_id", "ts"])
    position = inter.groupby("learner_id", observed=True).cumcount()
    size = inter.groupby("learner_id", observed=True)["learner_id"].transform("size")
    held = position >= size - np.maximum(1, np.round(size * 0.2))
    rows, learners = pd.factorize(inter["learner_id"])
    cols, courses = pd.factorize(inter["course_id"])
    shape = (len(learners), len(courses))

    def matrix(mask):
        return sparse.csr_matrix(
            (np.ones(int(mask.sum()), np.float32), (rows[mask], cols[mask])), shape=shape
        )

    train, test = matrix(~held.to_numpy()), matrix(held.to_numpy())
    data = TrainData(np.asarray(learners), np.asarray(courses), train)
    relevant = relevant_sets(test)
    keys = np.sort(
        np.random.default_rng(0).choice(
            np.array(list(relevant)), min(args.learners, len(relevant)), replace=False
        )
    )
    sample = {int(k): relevant[int(k)] for k in keys}

    out, sims = [], {}
    for name, limit in (("exact", 10**9), ("hnsw", 0)):
        model = UserKNN(50).fit(data)
        started = time.perf_counter()
        model.index = LearnerNeighbours(train, 50, exact_limit=limit)
        built = time.perf_counter() - started
        sims[name] = model.index.search(keys[:2000])[1]
        started = time.perf_counter()
        ndcg = evaluate(model, sample, ks=(10,))["ndcg@10"]
        out.append([name, built, time.perf_counter() - started, ndcg])
    mass = float(sims["hnsw"].sum() / sims["exact"].sum())
    print_table(
        f"User-kNN at size {args.size} ({shape[0]:,} learners, {train.nnz:,} training interactions), "
        f"{len(sample):,} held-out learners; HNSW keeps {mass:.1%} of the exact top-50 similarity mass",
        ["neighbours", "build s", "score s", "nDCG@10"],
        out,
    )


if __name__ == "__main__":
    main()
