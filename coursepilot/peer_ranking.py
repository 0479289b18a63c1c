"""Top-k peer recommendations and their baselines (second paper, section 3.3 and Table 2).

Hybrid peers: candidates are the learner's K-means cluster and its ``neighbour_clusters`` nearest
clusters (at most ``max_candidates``, sampled); score = a * interaction cosine + b * profile cosine
(eq. 19) + c * level closeness (1 - |D_u - D_v| / 2, D on 1-3). A learner is never their own peer;
every learner has a K-means cluster, so DBSCAN noise points get peers too. Each peer comes with the
reason that contributed most: courses in common, same job or similar interests, similar level.
Baselines on the same data: ``cf_peers`` (interaction cosine over everyone), ``cluster_random``
(random members of the same cluster) and ``active_peers`` (the most active learners).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.preprocessing import normalize

from .learner_neighbours import LearnerNeighbours
from .metrics import metrics_from_hits
from .models.base import top_k
from .profiles import LearnerProfiles
from .sampling import PEER_SCORED_LEARNERS, SCORED_LEARNERS, sample_rows


@dataclass(frozen=True)
class PeerConfig:
    k: int = 10
    interaction_weight: float = 0.5
    profile_weight: float = 0.3
    level_weight: float = 0.2
    neighbour_clusters: int = 2
    max_candidates: int = 3000
    seed: int = 0


def hybrid_peers(matrix: sparse.csr_matrix, profiles: LearnerProfiles, proficiency: np.ndarray, labels: np.ndarray,
                 centroids: np.ndarray, jobs: np.ndarray, config: PeerConfig = PeerConfig()) -> pd.DataFrame:
    """learner (row), rank, peer (row), score, reason for every learner.

    Candidates are scored a batch of learners at a time in float32, the pool's side prepared once per cluster.
    """
    rng = np.random.default_rng(config.seed)
    unit = normalize(matrix, axis=1).tocsr().astype(np.float32)
    binary = (matrix > 0).astype(np.float32).tocsr()
    level = np.nan_to_num(proficiency, nan=2.0).astype(np.float32)
    centre_distance = ((centroids[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    out = []
    for cluster in range(len(centroids)):
        members = np.flatnonzero(labels == cluster)
        if not len(members):
            continue
        near = np.argsort(centre_distance[cluster])[: 1 + config.neighbour_clusters]
        pool = np.flatnonzero(np.isin(labels, near))
        if len(pool) > config.max_candidates:
            pool = np.union1d(rng.choice(pool, config.max_candidates, replace=False), members[: config.max_candidates // 4])
        k = min(config.k, len(pool) - 1)
        if k < 1:
            continue
        cosine, pool_t = profiles.against(pool), unit[pool].T.tocsr()
        for start in range(0, len(members), 1024):
            rows = members[start:start + 1024]
            parts = (config.interaction_weight * (unit[rows] @ pool_t).toarray(), config.profile_weight * cosine(rows),
                     config.level_weight * (1 - np.abs(np.subtract.outer(level[rows], level[pool])) / 2))
            score = parts[0] + parts[1]
            score += parts[2]
            at = np.minimum(np.searchsorted(pool, rows), len(pool) - 1)
            own = pool[at] == rows
            score[np.flatnonzero(own), at[own]] = -np.inf  # a learner is never their own peer
            best = top_k(score, k)
            learners, peers = np.repeat(rows, k), pool[best].ravel()
            kinds = np.stack([np.take_along_axis(part, best, axis=1) for part in parts]).argmax(axis=0).ravel()
            out.append(pd.DataFrame({"learner": learners, "rank": np.tile(np.arange(1, k + 1), len(rows)), "peer": peers,
                                     "score": np.take_along_axis(score, best, axis=1).ravel().astype(np.float64),
                                     "reason": _reasons(kinds, learners, peers, binary, jobs)}))
    columns = ["learner", "rank", "peer", "score", "reason"]
    return pd.concat(out, ignore_index=True)[columns] if out else pd.DataFrame(columns=columns)


def _reasons(kinds: np.ndarray, rows: np.ndarray, peers: np.ndarray, binary: sparse.csr_matrix, jobs: np.ndarray) -> np.ndarray:
    """The one-line reason of each (row, peer) pair from the part that contributed most (kinds: 0 interaction,
    1 profile, 2 level)."""
    shared = np.asarray(binary[rows].multiply(binary[peers]).sum(axis=1)).ravel().astype(int)
    job_of = pd.Series(jobs[rows], dtype=object)
    same_job = (job_of == pd.Series(jobs[peers], dtype=object)).to_numpy() & job_of.map(lambda j: isinstance(j, str)).to_numpy()
    courses = pd.Series(shared).astype(str) + np.where(shared == 1, " course in common", " courses in common")
    profile = np.where(same_job, "same job (" + job_of.astype(str) + ")", "similar interests")
    return np.select([kinds == 0, kinds == 1], [courses.to_numpy(), profile], "similar level")


def cf_peers(matrix: sparse.csr_matrix, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """``(n, k)`` top-k learners by interaction cosine (eq. 8) among everyone, for ``rows`` only when given (the
    others -1): an evaluation baseline needs only the scored learners. Exact for up to ``SCORED_LEARNERS`` rows
    (HNSW candidates above that and above 50,000 learners; see ``LearnerNeighbours``)."""
    rows = np.arange(matrix.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    index = LearnerNeighbours(matrix, k, index=len(rows) > SCORED_LEARNERS)  # few queries: exact, no index to build
    out = np.full((matrix.shape[0], index.k), -1, dtype=np.int64)
    for start in range(0, len(rows), 4096):
        out[rows[start:start + 4096]] = index.search(rows[start:start + 4096])[0]
    return out


def cluster_random_peers(labels: np.ndarray, k: int, seed: int = 0, rows: np.ndarray | None = None) -> np.ndarray:
    """``(n, k)`` random members of each learner's cluster (never themselves), for ``rows`` only when given (the others -1)."""
    rng = np.random.default_rng(seed)
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows, dtype=np.int64)
    members_of = {label: np.flatnonzero(labels == label) for label in np.unique(labels[rows])}
    out = np.full((len(labels), k), -1, dtype=np.int64)
    for row in rows:
        members = members_of[labels[row]]
        pool = members if len(members) <= 4 * k + 1 else rng.choice(members, 4 * k + 1, replace=False)
        others = pool[pool != row]
        chosen = rng.choice(others, min(k, len(others)), replace=False)
        out[row, :len(chosen)] = chosen
    return out


def active_peers(matrix: sparse.csr_matrix, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """``(n, k)`` most active learners (most training courses), never the learner themselves; for ``rows`` only when given."""
    rows = np.arange(matrix.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    order = np.argsort(-np.diff(matrix.indptr), kind="stable")[: k + 1]
    own = order[None, :] == rows[:, None]
    keep = np.argsort(own, axis=1, kind="stable")[:, :k]  # the others first, in activity order
    out = np.full((matrix.shape[0], k), -1, dtype=np.int64)
    out[rows, :keep.shape[1]] = np.where(np.take_along_axis(own, keep, axis=1), -1, order[keep])
    return out


def ranked_matrix(ranked: pd.DataFrame, k: int) -> np.ndarray:
    """Peer rows of a frame (learner / rank / peer) as an ``(n, k)`` array, -1 padded."""
    n = int(ranked["learner"].max()) + 1 if len(ranked) else 0
    out = np.full((n, k), -1, dtype=np.int64)
    keep = ranked["rank"].to_numpy() <= k
    out[ranked["learner"].to_numpy()[keep], ranked["rank"].to_numpy()[keep] - 1] = ranked["peer"].to_numpy()[keep]
    return out


def relevant_counts(binary: sparse.csr_matrix, rows: np.ndarray | None = None, batch: int = 2048) -> np.ndarray:
    """Per learner of ``rows`` (default: all): how many other learners share at least one test-period course
    with them (the relevant peers). ``binary``: the 0/1 learners x courses matrix of test-period interactions.
    """
    rows = np.arange(binary.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    transposed = binary.T.tocsr()
    has_test = np.diff(binary.indptr) > 0
    out = np.zeros(len(rows), dtype=np.int64)
    for start in range(0, len(rows), batch):
        block = rows[start:start + batch]
        out[start:start + batch] = np.diff((binary[block] @ transposed).indptr) - has_test[block]  # not oneself
    return out


def scored_candidates(test: sparse.csr_matrix, max_learners: int = PEER_SCORED_LEARNERS, seed: int = 0) -> np.ndarray:
    """Learners with a test-period course, a seeded sample of at most ``max_learners``: the ones peer rankings
    are scored on (those of them with at least one relevant peer)."""
    rows = np.flatnonzero(np.diff(test.tocsr().indptr) > 0)
    chosen = sample_rows(len(rows), max_learners, seed)
    return rows if chosen is None else rows[chosen]


def peer_hits(binary: sparse.csr_matrix, rows: np.ndarray, ranked: np.ndarray, batch: int = 100_000) -> np.ndarray:
    """``(len(rows), k)`` booleans: does the peer at each rank share a test-period course with the learner?"""
    k = ranked.shape[1]
    valid = ranked >= 0
    peers = np.where(valid, ranked, 0).ravel()
    learners = np.repeat(np.asarray(rows), k)
    shared = np.zeros(len(learners))
    for s in range(0, len(learners), batch):
        shared[s:s + batch] = np.asarray(binary[learners[s:s + batch]].multiply(binary[peers[s:s + batch]]).sum(axis=1)).ravel()
    return (shared.reshape(len(rows), k) > 0) & valid


def evaluate_peers(test: sparse.csr_matrix, rankings: dict[str, np.ndarray], ks=(5, 10),
                   max_learners: int = PEER_SCORED_LEARNERS, seed: int = 0) -> tuple[dict, dict, int]:
    """(mean ``<metric>@<k>`` per ranking, per-learner nDCG@10 per ranking, learners evaluated).

    A learner is evaluated when at least one other learner shares a test-period course with them;
    a recommended peer is relevant when they do (DESIGN.md). Rankings are ``(n, k)`` arrays, -1 padded.
    Above ``max_learners`` learners with test courses, a seeded sample of them (:func:`scored_candidates`).
    """
    binary = (test > 0).astype(np.float32).tocsr()
    candidates = scored_candidates(binary, max_learners, seed)
    counts = relevant_counts(binary, candidates)
    evaluated, n_relevant = candidates[counts > 0], counts[counts > 0]
    results, per = {}, {}
    for name, ranked in rankings.items():
        full = np.full((test.shape[0], max(ks)), -1, dtype=np.int64)
        full[:min(len(ranked), len(full)), :min(ranked.shape[1], max(ks))] = ranked[:len(full), :max(ks)]
        hits = peer_hits(binary, evaluated, full[evaluated])
        metrics = metrics_from_hits(hits, n_relevant, ks)
        results[name] = {key: float(np.mean(v)) for key, v in metrics.items()}
        per[name] = metrics[f"ndcg@{max(ks)}"]
    return results, per, len(evaluated)
