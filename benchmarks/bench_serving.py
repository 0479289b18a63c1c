"""Serving from the MLflow registry: load time, then latency of one learner's top-10 (known and cold start).

Usage: python benchmarks/bench_serving.py [--home DIR] [--alias champion] [--queries 1000]

Needs a project home where a run registered the recommender (`coursepilot run --home DIR`). Each
query is one `predict` call of the loaded pyfunc model with a one-row DataFrame, as a service would
make it: a random known learner, or a new learner's profile text (embedded with MiniLM, then
scored against the course embeddings).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from common import console, print_table

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROFILES = [
    "data analyst who uses Python and SQL, interested in machine learning",
    "nurse learning statistics for clinical research",
    "web developer, JavaScript and React, wants cloud skills",
    "beginner in programming",
    "project manager interested in agile and leadership",
]


def latencies(model, frames: list[pd.DataFrame]) -> np.ndarray:
    out = np.empty(len(frames))
    for i, frame in enumerate(frames):
        start = time.perf_counter()
        model.predict(frame)
        out[i] = time.perf_counter() - start
    return out * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home",
        help="project home with a registered recommender (default: $COURSEPILOT_HOME or ./.coursepilot)",
    )
    parser.add_argument("--alias", default="champion", help="registry alias to load (default champion)")
    parser.add_argument("--queries", type=int, default=1000, help="timed queries per kind (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed for picking learners (default 0)")
    args = parser.parse_args()

    from coursepilot.home import ProjectHome
    from coursepilot.registry import load_recommender

    home = ProjectHome.resolve(args.home)
    start = time.perf_counter()
    model = load_recommender(args.alias, home)
    load_s = time.perf_counter() - start
    serving = model.unwrap_python_model().model
    rng = np.random.default_rng(args.seed)
    learners = rng.choice(serving.learner_ids.to_numpy(), args.queries)
    known = [pd.DataFrame({"learner_id": [lid], "k": [10]}) for lid in learners]
    cold = [
        pd.DataFrame({"profile": [PROFILES[i % len(PROFILES)] + f" ({i})"], "k": [10]})
        for i in range(args.queries)
    ]
    latencies(model, known[:20] + cold[:5])  # warm-up: first calls load the embedding model
    rows = [["load from registry", f"{load_s * 1000:.0f}", "", "", 1]]
    for name, frames in (("known learner top-10", known), ("cold-start profile top-10", cold)):
        ms = latencies(model, frames)
        rows.append(
            [name, f"{np.median(ms):.2f}", f"{np.percentile(ms, 99):.2f}", f"{ms.mean():.2f}", len(ms)]
        )
    print_table(
        f"Serving {args.alias} ({len(serving.learner_ids):,} learners, {len(serving.course_ids):,} "
        "courses), ms",
        ["what", "p50 / once", "p99", "mean", "queries"],
        rows,
    )
    console.print(f"home {home.root}")


if __name__ == "__main__":
    main()
