"""Top-k peer recommendations and their baselines (second paper, section 3.3 and Table 2).

Hybrid peers: candidates are the learner's K-means cluster and its ``neighbour_clusters`` nearest
clusters (at most ``max_candidates``, sampled) and the ``active_candidates`` most active learners (those most
likely to share a future course; at least ``k + 1``, so that the activity term alone is ``active_peers``);
score = a * interaction cosine + b * profile cosine (eq. 19) + c * level closeness (1 - |D_u - D_v| / 2, D on
1-3) + d * activity (log(1 + training courses), scaled to 0-1). :mod:`coursepilot.peers.tuning` chooses a-d on
a validation carve of training. A learner is never their own peer; every learner has a K-means cluster, so
DBSCAN noise points get peers too. Each peer comes with the reason from the term that contributed most:
courses in common, same job or similar interests, similar level, active learner.
Baselines on the same data: ``cf_peers`` (interaction cosine over everyone), ``cluster_random``
(random members of the same cluster) and ``active_peers`` (the most active learners).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.preprocessing import normalize

from ..evaluation.metrics import metrics_from_hits
from ..learner_neighbours import LearnerNeighbours
from ..profiles import LearnerProfiles
from ..ranking import top_k
from ..sampling import PEER_SCORED_LEARNERS, SCORED_LEARNERS, sample_rows
from ..warehouse import learner_id_table

TERMS = ("interaction", "profile", "level", "activity")


@dataclass(frozen=True)
class PeerConfig:
    k: int = 10
    interaction_weight: float = 0.5
    profile_weight: float = 0.3
    level_weight: float = 0.2
    activity_weight: float = 0.0
    neighbour_clusters: int = 2
    max_candidates: int = 3000
    active_candidates: int = 500  # the most active learners join every pool (at least k + 1 of them)
    seed: int = 0

    @property
    def weights(self) -> np.ndarray:
        """The weight of each of :data:`TERMS`."""
        return np.array([getattr(self, f"{term}_weight") for term in TERMS], dtype=np.float32)


@dataclass
class PeerBatch:
    """Learner ``rows`` against their candidate ``pool``: ``terms`` holds the unweighted ``(rows, pool)``
    scores of each of :data:`TERMS`; ``own`` the (row, pool) positions where a learner meets themselves."""

    rows: np.ndarray
    pool: np.ndarray
    terms: np.ndarray
    own: tuple[np.ndarray, np.ndarray]
    k: int

    def score(self, weights: np.ndarray) -> np.ndarray:
        """The weighted sum of the terms, -inf where a learner meets themselves."""
        score = np.tensordot(np.asarray(weights, dtype=np.float32), self.terms, axes=1)
        score[self.own] = -np.inf
        return score

    def top(self, weights: np.ndarray) -> np.ndarray:
        """``(rows, k)`` best peers (learner rows) under ``weights``, best first."""
        return self.pool[top_k(self.score(weights), self.k)]


def activity(matrix: sparse.csr_matrix) -> np.ndarray:
    """log(1 + training courses) of every learner, scaled to 0-1: it orders learners as :func:`active_peers`
    does."""
    counts = np.log1p(np.diff(matrix.tocsr().indptr)).astype(np.float32)
    return counts / counts.max() if counts.max(initial=0.0) > 0 else counts


def peer_batches(
    matrix: sparse.csr_matrix,
    profiles: LearnerProfiles,
    proficiency: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    config: PeerConfig,
    rows: np.ndarray | None = None,
    batch: int = 1024,
) -> Iterator[PeerBatch]:
    """The terms of ``rows`` (default: everyone) against their candidates, a cluster and ``batch`` learners at
    a time, in float32 with each pool's side prepared once. The pools do not depend on ``rows``."""
    unit = normalize(matrix, axis=1).tocsr().astype(np.float32)
    level = np.nan_to_num(proficiency, nan=2.0).astype(np.float32)
    active = activity(matrix)
    most_active = np.argsort(-active, kind="stable")[: max(config.k + 1, config.active_candidates)]
    centre_distance = ((centroids[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    asked = np.ones(len(labels), dtype=bool) if rows is None else np.isin(np.arange(len(labels)), rows)
    for cluster in range(len(centroids)):
        members = np.flatnonzero(labels == cluster)
        queries = members[asked[members]]
        if not len(queries):
            continue
        near = np.flatnonzero(
            np.isin(labels, np.argsort(centre_distance[cluster])[: 1 + config.neighbour_clusters])
        )
        pool = _pool(members, near, most_active, config, cluster)
        k = min(config.k, len(pool) - 1)
        if k < 1:
            continue
        cosine, pool_t = profiles.against(pool), unit[pool].T.tocsr()
        for start in range(0, len(queries), batch):
            part = queries[start : start + batch]
            # each term written in place: no temporaries to stack
            terms = np.empty((len(TERMS), len(part), len(pool)), dtype=np.float32)
            (unit[part] @ pool_t).toarray(out=terms[0])
            terms[1] = cosine(part)
            closeness = np.subtract.outer(level[part], level[pool], out=terms[2])
            np.abs(closeness, out=closeness)
            closeness *= -0.5
            closeness += 1
            terms[3] = active[pool]
            at = np.minimum(np.searchsorted(pool, part), len(pool) - 1)
            own = pool[at] == part
            yield PeerBatch(part, pool, terms, (np.flatnonzero(own), at[own]), k)


def _pool(
    members: np.ndarray, near: np.ndarray, most_active: np.ndarray, config: PeerConfig, cluster: int
) -> np.ndarray:
    """A cluster's candidates: the learners of the ``near`` clusters (above ``max_candidates``, a sample
    seeded by the cluster, with its first members kept) and the most active learners."""
    if len(near) > config.max_candidates:
        rng = np.random.default_rng([config.seed, cluster])
        near = np.union1d(
            rng.choice(near, config.max_candidates, replace=False), members[: config.max_candidates // 4]
        )
    return np.union1d(near, most_active)


def hybrid_peers(
    matrix: sparse.csr_matrix,
    profiles: LearnerProfiles,
    proficiency: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    jobs: np.ndarray,
    config: PeerConfig = PeerConfig(),
    rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """learner (row), rank, peer (row), score, reason for the learner ``rows`` (default: everyone; candidates
    and terms: :func:`peer_batches`)."""
    binary = (matrix > 0).astype(np.float32).tocsr()
    weights = config.weights

    def ranked(batch: PeerBatch) -> pd.DataFrame:
        score = batch.score(weights)
        best = top_k(score, batch.k)
        learners, peers = np.repeat(batch.rows, batch.k), batch.pool[best].ravel()
        parts = weights[:, None, None] * np.take_along_axis(batch.terms, best[None], axis=2)
        return pd.DataFrame(
            {
                "learner": learners,
                "rank": np.tile(np.arange(1, batch.k + 1), len(batch.rows)),
                "peer": peers,
                "score": np.take_along_axis(score, best, axis=1).ravel().astype(float),
                "reason": peer_reasons(parts.argmax(axis=0).ravel(), learners, peers, binary, jobs),
            }
        )

    # a batch is ranked on a second thread while the next one's terms are computed (numpy and scipy work
    # that releases the GIL); one batch waits at most, in order
    out, waiting = [], deque()
    with ThreadPoolExecutor(1) as ranker:
        for batch in peer_batches(matrix, profiles, proficiency, labels, centroids, config, rows):
            waiting.append(ranker.submit(ranked, batch))
            if len(waiting) > 1:
                out.append(waiting.popleft().result())
        out.extend(ranking.result() for ranking in waiting)
    columns = ["learner", "rank", "peer", "score", "reason"]
    return pd.concat(out, ignore_index=True)[columns] if out else pd.DataFrame(columns=columns)


def peer_reasons(
    kinds: np.ndarray, rows: np.ndarray, peers: np.ndarray, binary: sparse.csr_matrix, jobs: np.ndarray
) -> np.ndarray:
    """The one-line reason of each (row, peer) pair from the term that contributed most (``kinds``: its
    position in :data:`TERMS`). Each text is built once per distinct value (a count, a job) and looked
    up: at a million learners there are ten million pairs and a few hundred distinct texts."""
    out = np.full(len(kinds), "similar level", dtype=object)
    pick = np.flatnonzero(kinds == 0)
    shared = np.asarray(binary[rows[pick]].multiply(binary[peers[pick]]).sum(axis=1)).ravel().astype(int)
    out[pick] = _texts(shared, lambda n: f"{n} course in common" if n == 1 else f"{n} courses in common")
    pick = np.flatnonzero(kinds == 1)
    job, peer_job = jobs[rows[pick]], jobs[peers[pick]]
    # element by element: a missing job may be None, NaN or pd.NA, and NA has no truth value
    same = np.fromiter((isinstance(j, str) and j == p for j, p in zip(job, peer_job)), bool, len(pick))
    out[pick] = "similar interests"
    out[pick[same]] = _texts(job[same], lambda j: f"same job ({j})")
    pick = np.flatnonzero(kinds == 3)
    out[pick] = _texts(np.diff(binary.indptr)[peers[pick]], lambda n: f"active learner ({n} courses)")
    return out


def _texts(values: np.ndarray, text) -> np.ndarray:
    """``text(v)`` for each of ``values``, called once per distinct value."""
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.array([text(v) for v in distinct], dtype=object)[inverse]


def cf_peers(matrix: sparse.csr_matrix, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """``(n, k)`` top-k learners by interaction cosine (eq. 8) among everyone, for ``rows`` only when given
    (the others -1): an evaluation baseline needs only the scored learners. Exact for up to
    ``SCORED_LEARNERS`` rows (HNSW candidates above that and above 50,000 learners; see
    ``LearnerNeighbours``)."""
    rows = np.arange(matrix.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    # few queries: exact, no index to build
    index = LearnerNeighbours(matrix, k, index=len(rows) > SCORED_LEARNERS)
    out = np.full((matrix.shape[0], index.k), -1, dtype=np.int64)
    for start in range(0, len(rows), 4096):
        out[rows[start : start + 4096]] = index.search(rows[start : start + 4096])[0]
    return out


def cluster_random_peers(
    labels: np.ndarray, k: int, seed: int = 0, rows: np.ndarray | None = None
) -> np.ndarray:
    """``(n, k)`` random members of each learner's cluster (never themselves), for ``rows`` only when given
    (the others -1)."""
    rng = np.random.default_rng(seed)
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows, dtype=np.int64)
    members_of = {label: np.flatnonzero(labels == label) for label in np.unique(labels[rows])}
    out = np.full((len(labels), k), -1, dtype=np.int64)
    for row in rows:
        members = members_of[labels[row]]
        pool = members if len(members) <= 4 * k + 1 else rng.choice(members, 4 * k + 1, replace=False)
        others = pool[pool != row]
        chosen = rng.choice(others, min(k, len(others)), replace=False)
        out[row, : len(chosen)] = chosen
    return out


def active_peers(matrix: sparse.csr_matrix, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """``(n, k)`` most active learners (most training courses), never the learner themselves; for ``rows``
    only when given."""
    rows = np.arange(matrix.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    order = np.argsort(-np.diff(matrix.indptr), kind="stable")[: k + 1]
    own = order[None, :] == rows[:, None]
    keep = np.argsort(own, axis=1, kind="stable")[:, :k]  # the others first, in activity order
    out = np.full((matrix.shape[0], k), -1, dtype=np.int64)
    out[rows, : keep.shape[1]] = np.where(np.take_along_axis(own, keep, axis=1), -1, order[keep])
    return out


def stored_peers(con, ids: np.ndarray, rows: np.ndarray | None = None) -> pd.DataFrame:
    """The stored ``peer_recommendations`` as learner / rank / peer rows of ``ids`` (pairs outside ``ids``
    left out), of the learners ``ids[rows]`` only when given (the ones an evaluation scores: at a million
    learners, reading all 10M rows cost 10 s)."""
    query = "SELECT learner_id, rank, peer_id FROM peer_recommendations"
    if rows is None:
        stored = con.execute(query).df()
    else:
        con.register("_stored_peers_of", learner_id_table(ids[rows]))
        try:
            stored = con.execute(
                query + " WHERE learner_id IN (SELECT learner_id FROM _stored_peers_of)"
            ).df()
        finally:
            con.unregister("_stored_peers_of")
    index = pd.Index(ids)
    learner, peer = index.get_indexer(stored["learner_id"]), index.get_indexer(stored["peer_id"])
    keep = (learner >= 0) & (peer >= 0)
    return pd.DataFrame(
        {"learner": learner[keep], "rank": stored["rank"].to_numpy()[keep], "peer": peer[keep]}
    )


def ranked_matrix(ranked: pd.DataFrame, k: int) -> np.ndarray:
    """Peer rows of a frame (learner / rank / peer) as an ``(n, k)`` array, -1 padded."""
    n = int(ranked["learner"].max()) + 1 if len(ranked) else 0
    out = np.full((n, k), -1, dtype=np.int64)
    keep = ranked["rank"].to_numpy() <= k
    out[ranked["learner"].to_numpy()[keep], ranked["rank"].to_numpy()[keep] - 1] = ranked["peer"].to_numpy()[
        keep
    ]
    return out


def relevant_counts(
    binary: sparse.csr_matrix, rows: np.ndarray | None = None, batch: int = 2048
) -> np.ndarray:
    """Per learner of ``rows`` (default: all): how many other learners share at least one test-period course
    with them (the relevant peers). ``binary``: the 0/1 learners x courses matrix of test-period interactions.
    """
    rows = np.arange(binary.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    transposed = binary.T.tocsr()
    has_test = np.diff(binary.indptr) > 0
    out = np.zeros(len(rows), dtype=np.int64)
    for start in range(0, len(rows), batch):
        block = rows[start : start + batch]
        # not oneself
        out[start : start + batch] = np.diff((binary[block] @ transposed).indptr) - has_test[block]
    return out


def scored_candidates(
    test: sparse.csr_matrix, max_learners: int = PEER_SCORED_LEARNERS, seed: int = 0
) -> np.ndarray:
    """Learners with a test-period course, a seeded sample of at most ``max_learners``: the ones peer rankings
    are scored on (those of them with at least one relevant peer)."""
    rows = np.flatnonzero((test > 0).tocsr().getnnz(axis=1))  # as evaluate_peers' 0/1 matrix sees them
    chosen = sample_rows(len(rows), max_learners, seed)
    return rows if chosen is None else rows[chosen]


def peer_hits(
    binary: sparse.csr_matrix, rows: np.ndarray, ranked: np.ndarray, batch: int = 100_000
) -> np.ndarray:
    """``(len(rows), k)`` booleans: does the peer at each rank share a test-period course with the learner?"""
    k = ranked.shape[1]
    valid = ranked >= 0
    peers = np.where(valid, ranked, 0).ravel()
    learners = np.repeat(np.asarray(rows), k)
    shared = np.zeros(len(learners))
    for s in range(0, len(learners), batch):
        shared[s : s + batch] = np.asarray(
            binary[learners[s : s + batch]].multiply(binary[peers[s : s + batch]]).sum(axis=1)
        ).ravel()
    return (shared.reshape(len(rows), k) > 0) & valid


def evaluated_learners(
    binary: sparse.csr_matrix, max_learners: int = PEER_SCORED_LEARNERS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(learners a peer ranking is scored on, how many relevant peers each has): the :func:`scored_candidates`
    with at least one relevant peer. ``binary``: the 0/1 float32 learners x courses matrix of the period peers
    must share."""
    candidates = scored_candidates(binary, max_learners, seed)
    counts = relevant_counts(binary, candidates)
    return candidates[counts > 0], counts[counts > 0]


def peer_metrics(
    binary: sparse.csr_matrix, rows: np.ndarray, n_relevant: np.ndarray, ranked: np.ndarray, ks=(5, 10)
) -> dict[str, np.ndarray]:
    """Per-learner ``<metric>@<k>`` of ``ranked``, the ``(len(rows), any k)`` peers of ``rows`` (-1
    padded)."""
    full = np.full((len(rows), max(ks)), -1, dtype=np.int64)
    full[:, : min(ranked.shape[1], max(ks))] = ranked[:, : max(ks)]
    return metrics_from_hits(peer_hits(binary, rows, full), n_relevant, ks)


def evaluate_peers(
    test: sparse.csr_matrix,
    rankings: dict[str, np.ndarray],
    ks=(5, 10),
    max_learners: int = PEER_SCORED_LEARNERS,
    seed: int = 0,
) -> tuple[dict, dict, int]:
    """(mean ``<metric>@<k>`` per ranking, per-learner nDCG@k per ranking (largest k), learners evaluated).

    A learner is evaluated when at least one other learner shares a test-period course with them;
    a recommended peer is relevant when they do (DESIGN.md). Rankings are ``(n, k)`` arrays, -1 padded.
    Above ``max_learners`` learners with test courses, a seeded sample of them (:func:`scored_candidates`).
    """
    binary = (test > 0).astype(np.float32).tocsr()
    evaluated, n_relevant = evaluated_learners(binary, max_learners, seed)
    results, per = {}, {}
    for name, ranked in rankings.items():
        padded = np.full((test.shape[0], ranked.shape[1]), -1, dtype=np.int64)
        padded[: min(len(ranked), len(padded))] = ranked[: len(padded)]
        metrics = peer_metrics(binary, evaluated, n_relevant, padded[evaluated], ks)
        results[name] = {key: float(np.mean(v)) for key, v in metrics.items()}
        per[name] = metrics[f"ndcg@{max(ks)}"]
    return results, per, len(evaluated)
