"""Scoring batches: the shipped fusion's top 10 for a sample of learners, in batches of different sizes.

Usage: python benchmarks/bench_scoring_batches.py [--learners 100000] [--courses 5055] [--scored 20480]
[--batches 2048 1024 512 256] [--repeats 2]

The learners x courses matrix is random (``--learners`` rows of about 17 courses each, with random times),
as are the course vectors, TF-IDF terms and labels; the fusion has the components and weights the L nightly
keeps (popularity, ALS, item-kNN, MiniLM and TF-IDF content, level), each really fitted. Every batch
allocates a few arrays of batch x courses scores. Seconds to rank ``--scored`` learners with
``recommend_all`` (its two threads), best of ``--repeats``, per batch size and for the default
(``coursepilot.ranking.batch_rows``); all must rank the same scores.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import sparse

from common import best_of, print_table
from coursepilot.models.base import TrainData, recommend_all
from coursepilot.models.catalogue import build
from coursepilot.models.fusion import Fusion
from coursepilot.ranking import batch_rows

WEIGHTS = {"popularity": 0.25, "als": 0.05, "item_knn": 1.0, "content_minilm": 0.1, "content_tfidf": 0.05}
PARAMS = {
    "als": {"factors": 32, "iterations": 15, "regularization": 10.0, "alpha": 2.0},
    "item_knn": {"similarity": "cosine", "neighbours": 400, "recency": 8.0},
    "level": {"signal": "both"},
}


def random_data(learners: int, courses: int, rng: np.random.Generator) -> TrainData:
    per = rng.poisson(17, learners).clip(1, courses)
    rows = np.repeat(np.arange(learners), per)
    popularity = rng.zipf(1.3, courses).astype(float)
    cols = rng.choice(courses, len(rows), p=popularity / popularity.sum())
    shape = (learners, courses)
    matrix = sparse.csr_matrix((rng.uniform(1, 3, len(rows)).astype(np.float32), (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    times = matrix.copy().astype(np.float64)
    times.data = rng.uniform(1.6e9, 1.7e9, times.nnz)
    vectors = rng.normal(size=(courses, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tfidf = sparse.random(courses, 20_000, density=0.002, format="csr", random_state=1, dtype=np.float32)
    return TrainData(
        np.arange(learners).astype(str),
        np.arange(courses).astype(str),
        matrix,
        vectors,
        tfidf,
        rng.integers(-1, 3, courses),
        rng.uniform(0, 1, learners),
        {"has_ratings": False},
        times,
        rng.uniform(0, 1, courses),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--learners", type=int, default=100_000, help="learners in the matrix (default 100,000)"
    )
    parser.add_argument("--courses", type=int, default=5055, help="courses (default 5,055, as at size L)")
    parser.add_argument(
        "--scored", type=int, default=20_480, help="learners ranked per timed run (default 20,480)"
    )
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[2048, 1024, 512, 256], help="batch sizes to time"
    )
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per size; the best counts")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    data = random_data(args.learners, args.courses, rng)
    weights = {**WEIGHTS, "level": 0.05}
    fusion = Fusion({m: build(m, PARAMS.get(m)) for m in weights}, weights).fit(data)
    rows = np.sort(rng.choice(args.learners, min(args.scored, args.learners), replace=False))
    scores = fusion.score(rows)
    default = batch_rows(args.courses)
    table, first = [], None
    for batch in [*args.batches, default]:
        top = recommend_all({"": fusion}, rows, 10, batch)[""]
        ranked = np.take_along_axis(scores, top, axis=1)
        first = ranked if first is None else first
        seconds = best_of(args.repeats, lambda b=batch: recommend_all({"": fusion}, rows, 10, b))
        label = f"{batch:,}" + (" (default)" if batch == default else "")
        table.append([label, f"{batch * args.courses * 4 / 2**20:.1f}", seconds, np.allclose(ranked, first)])
    print_table(
        f"the fusion's top 10 for {len(rows):,} of {args.learners:,} learners, {args.courses:,} courses (s)",
        ["batch (learners)", "float32 scores per array (MB)", "seconds", "same scores"],
        table,
    )


if __name__ == "__main__":
    main()
