"""Peers at scale: cluster space, K-means (k by silhouette), DBSCAN, hybrid peers and the CF baseline.

Usage: python benchmarks/bench_peers.py [--size L] [--k-range 4 8]

Interactions come from the synthetic generator at the given size; the four 384-wide profile parts
are random unit vectors of the real shape (their values do not change the arithmetic timed here).
One window is clustered (the pipeline repeats the K-means fit once per weekly window with k fixed).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd
from scipy import sparse

from common import print_table
from coursepilot.peers.clusters import ClusterConfig, ClusterSpace, dbscan, kmeans
from coursepilot.peers.ranking import PeerConfig, active_peers, cf_peers, cluster_random_peers, hybrid_peers
from coursepilot.profiles import PARTS, LearnerProfiles
from coursepilot.synthetic import SIZES, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", choices=list(SIZES), default="L", help="synthetic size (default L: 1,000,000 learners)"
    )
    parser.add_argument(
        "--k-range",
        type=int,
        nargs=2,
        default=[4, 16],
        help="K-means k searched by silhouette (default 4 16)",
    )
    args = parser.parse_args()
    timings = []

    def timed(name: str, fn):
        started = time.perf_counter()
        out = fn()
        timings.append(
            [
                name,
                time.perf_counter() - started,
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
            ]
        )
        return out

    tables = timed("generate", lambda: generate(SIZES[args.size]))
    inter = tables["interactions"].to_pandas()
    rows, learners = pd.factorize(inter["learner_id"])
    cols, _ = pd.factorize(inter["course_id"])
    matrix = sparse.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(learners), cols.max() + 1)
    )
    rng = np.random.default_rng(0)

    def parts():
        out = {}
        for p in PARTS:
            block = rng.standard_normal((matrix.shape[0], 384), dtype=np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            out[p] = block
        return LearnerProfiles(np.asarray(learners), out)

    profiles = timed("profiles (random, real shape)", parts)
    config = ClusterConfig(k_range=tuple(args.k_range))
    proficiency, temporal = rng.uniform(1, 3, matrix.shape[0]), rng.uniform(0, 1, matrix.shape[0])
    space = timed("cluster space fit (SVD on a sample)", lambda: ClusterSpace(config).fit(matrix, profiles))
    features = timed("cluster space transform", lambda: space.transform(matrix, proficiency, temporal))
    labels, centroids, k, scores = timed(
        f"K-means, k in {args.k_range[0]}-{args.k_range[1]} by silhouette", lambda: kmeans(features, config)
    )
    timed(f"K-means, k={k} fixed (each further window)", lambda: kmeans(features, ClusterConfig(k=k)))
    timed("DBSCAN (20,000-learner sample)", lambda: dbscan(features, config))
    jobs = np.array(["analyst", "engineer", "teacher"], dtype=object)[rng.integers(0, 3, matrix.shape[0])]
    peers = timed(
        "hybrid peers, top-10 for everyone",
        lambda: hybrid_peers(matrix, profiles, proficiency, labels, centroids, jobs, PeerConfig()),
    )
    timed("CF peers baseline (exact or HNSW)", lambda: cf_peers(matrix, 10))
    timed("cluster-random baseline", lambda: cluster_random_peers(labels, 10))
    timed("most-active baseline", lambda: active_peers(matrix, 10))
    print_table(
        f"Peers at size {args.size}: {matrix.shape[0]:,} learners, {matrix.nnz:,} interactions; k={k}, "
        f"{len(peers):,} peer rows",
        ["stage", "seconds", "peak GB so far"],
        [[name, seconds, gb] for name, seconds, gb in timings]
        + [["total", sum(t[1] for t in timings), timings[-1][2]]],
    )


if __name__ == "__main__":
    main()
