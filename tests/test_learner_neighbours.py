"""Learner neighbours: the exact path against brute force, the HNSW path against the exact one."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.preprocessing import normalize

from coursepilot.learner_neighbours import LearnerNeighbours


def clustered_matrix(learners: int = 3000, courses: int = 300, seed: int = 0) -> sparse.csr_matrix:
    """Learners drawn from 30 taste groups, each group preferring its own 10 courses."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 30, learners)
    rows, cols = [], []
    for u in range(learners):
        liked = group[u] * 10 + rng.choice(10, 4, replace=False)
        other = rng.choice(courses, 2, replace=False)
        rows += [u] * 6
        cols += list(liked) + list(other)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(learners, courses))


def test_exact_neighbours_match_brute_force_and_exclude_the_learner():
    matrix = clustered_matrix(400, 300)
    index = LearnerNeighbours(matrix, k=5)
    assert index.exact
    rows = np.arange(0, 400, 7)
    found, sims = index.search(rows)
    unit = normalize(matrix).toarray()
    brute = unit[rows] @ unit.T
    brute[np.arange(len(rows)), rows] = -np.inf
    assert not (found == rows[:, None]).any()
    np.testing.assert_allclose(sims, -np.sort(-brute, axis=1)[:, :5], rtol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(brute, found, axis=1), sims, rtol=1e-5)


def test_hnsw_neighbours_recall_the_exact_ones_with_exact_weights():
    matrix = clustered_matrix()
    exact = LearnerNeighbours(matrix, k=10)
    approx = LearnerNeighbours(matrix, k=10, exact_limit=0)
    assert not approx.exact
    rows = np.arange(0, 3000, 3)
    exact_sims = exact.search(rows)[1]
    found, sims = approx.search(rows)
    assert not (found == rows[:, None]).any()
    unit = normalize(matrix)
    true = np.asarray(unit[np.repeat(rows, 10)].multiply(unit[found.ravel()]).sum(axis=1)).reshape(
        found.shape
    )
    np.testing.assert_allclose(sims, true, rtol=1e-5)  # re-scored exactly
    # ties make neighbour ids ambiguous: compare the similarity mass the neighbours carry
    assert sims.sum() / exact_sims.sum() > 0.95
    weights = approx.weights(rows)
    assert weights.shape == (len(rows), 3000) and (np.diff(weights.indptr) <= 10).all()


def test_a_single_learner_has_no_neighbours():
    index = LearnerNeighbours(sparse.csr_matrix(np.ones((1, 3))), k=5)
    assert index.weights(np.array([0])).nnz == 0


def test_sparse_exact_search_for_a_few_rows_matches_the_dense_one():
    matrix = clustered_matrix(2000, 300, seed=2)
    dense = LearnerNeighbours(matrix, k=8)
    few = LearnerNeighbours(matrix, k=8, exact_limit=0, index=False)
    assert (dense.kind, few.kind) == ("exact", "exact (sparse)")
    rows = np.arange(0, 2000, 11)
    found, sims = few.search(rows)
    np.testing.assert_allclose(sims, dense.search(rows)[1], rtol=1e-5)
    unit = normalize(matrix)
    true = np.asarray(unit[np.repeat(rows, 8)].multiply(unit[found.ravel()]).sum(axis=1)).reshape(found.shape)
    np.testing.assert_allclose(sims, true, rtol=1e-5)
    assert not (found == rows[:, None]).any()
    # 14 blocks, merged per row
    blocks = LearnerNeighbours(matrix, k=8, exact_limit=0, index=False, block_columns=150)
    np.testing.assert_allclose(blocks.search(rows)[1], sims, rtol=1e-6)
    # learner 2 shares nothing
    lonely = sparse.csr_matrix(([1.0, 1.0, 1.0], ([0, 1, 2], [0, 0, 1])), shape=(3, 2))
    found, sims = LearnerNeighbours(lonely, k=2, exact_limit=0, index=False).search(np.array([0, 2]))
    assert found.tolist() == [[1, -1], [-1, -1]] and sims[0, 0] == np.float32(1.0)
    assert LearnerNeighbours(lonely, k=2, exact_limit=0, index=False).weights(np.array([0, 2])).nnz == 1
