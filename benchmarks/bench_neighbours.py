"""Nearest-course search: exact (numpy) against the usearch HNSW index, by catalogue size.

Vectors are real MiniLM course embeddings (synthetic catalogue) tiled with small noise up to each
size, so neighbourhoods look like a real catalogue's. Recall@10 is against exact search.
Usage: python benchmarks/bench_neighbours.py [--sizes 5000 50000 200000] [--queries 500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import print_table
from coursepilot.content import course_texts
from coursepilot.embeddings import embed_texts
from coursepilot.neighbours import CourseIndex
from coursepilot.profiles import normalise_rows
from coursepilot.synthetic import SIZES, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[5_000, 50_000, 200_000], help="catalogue sizes"
    )
    parser.add_argument("--queries", type=int, default=500, help="queries per size")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    base = embed_texts(course_texts(generate(SIZES["S"])["courses"].to_pandas()))
    rows = []
    for size in args.sizes:
        vectors = normalise_rows(
            base[rng.integers(len(base), size=size)]
            + rng.normal(0, 0.03, (size, base.shape[1])).astype(np.float32)
        )
        queries = vectors[rng.choice(size, args.queries, replace=False)]
        results = {}
        for kind, limit in (("exact", size), ("usearch-hnsw", 0)):
            started = time.perf_counter()
            index = CourseIndex(np.arange(size), vectors, exact_limit=limit)
            build = time.perf_counter() - started
            started = time.perf_counter()
            for q in queries:  # one at a time, as a "courses like this one" request arrives
                index.search(q, 10)
            latency_ms = 1000 * (time.perf_counter() - started) / len(queries)
            results[kind] = index.search(queries, 10)[0]
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(results["exact"], results[kind])])
            rows.append([size, kind, build, latency_ms, recall])
    print_table("Top-10 nearest courses", ["courses", "index", "build s", "ms per query", "recall@10"], rows)


if __name__ == "__main__":
    main()
