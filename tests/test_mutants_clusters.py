"""The cluster space, DBSCAN's sample, label alignment and the latest state per window by hand (kills
mutants of coursepilot/peers/clusters.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize

from coursepilot.peers.clusters import (
    ClusterConfig,
    ClusterSpace,
    align_labels,
    dbscan,
    kmeans,
    latest_by_window,
)
from coursepilot.profiles import PARTS, LearnerProfiles


def test_latest_state_skips_learners_outside_the_ids():
    """u has state in weeks 0 and 2, v in week 1; x is not among the learners asked for: its row is left out
    (not written onto the last learner)."""
    state = pd.DataFrame(
        {
            "learner_id": ["u", "u", "v", "x"],
            "week": [0, 2, 1, 2],
            "D": [1.0, 2.0, 3.0, 9.0],
            "T": [0.1, 0.2, 0.3, 0.9],
        }
    )
    latest = latest_by_window(state, np.array(["u", "v"], dtype=object), np.array([0, 1, 2]))
    np.testing.assert_array_equal(latest["D"], [[1.0, 1.0, 2.0], [np.nan, 3.0, 3.0]])
    np.testing.assert_array_equal(latest["T"], [[0.1, 0.1, 0.2], [np.nan, 0.3, 0.3]])


def test_cluster_space_context_columns_by_hand():
    """The context block is [D / 3, T] (NaN: 0.5) times the context weight, after the two unit-row blocks."""
    rng = np.random.default_rng(0)
    interactions = sparse.csr_matrix(rng.random((6, 5)))
    parts = {p: rng.normal(size=(6, 3)).astype(np.float32) for p in PARTS}
    config = ClusterConfig(svd_dims=2, profile_dims=2, context_weight=2.0)
    space = ClusterSpace(config).fit(interactions, LearnerProfiles(np.arange(6), parts))
    proficiency = np.array([3.0, np.nan, 1.5, 0.0, 3.0, 3.0])
    temporal = np.array([0.2, np.nan, 1.0, 0.0, 0.5, 0.5])
    features = space.transform(interactions, proficiency, temporal)
    assert features.dtype == np.float32 and features.shape == (6, 2 + 2 + 2)
    np.testing.assert_allclose(features[:2, 4:], [[2.0, 0.4], [1.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(features[2:4, 4:], [[1.0, 2.0], [0.0, 0.0]], rtol=1e-6)


def test_dbscan_marks_the_learners_outside_its_sample():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(10, 2))
    labels = dbscan(features, ClusterConfig(dbscan_max_learners=6, dbscan_min_samples=2))
    assert labels.dtype.kind == "i" and (labels == -2).sum() == 4 and (labels >= -1).sum() == 6


def test_align_labels_follows_the_nearest_previous_centroids():
    previous = np.array([[0.0, 0.0], [10.0, 10.0]])
    centroids = np.array([[9.0, 8.0], [1.0, 0.0]])  # cluster 0 is near previous 1, cluster 1 near previous 0
    labels, ordered = align_labels(previous, centroids, np.array([0, 1, 1]))
    assert labels.tolist() == [1, 0, 0]
    np.testing.assert_array_equal(ordered, [[1.0, 0.0], [9.0, 8.0]])
    same, kept = align_labels(None, centroids, np.array([0, 1]))
    assert same.tolist() == [0, 1] and kept is centroids


def _space_inputs(n: int, courses: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    interactions = sparse.csr_matrix(rng.random((n, courses)))
    parts = {p: rng.normal(size=(n, width)).astype(np.float32) for p in PARTS}
    return interactions, LearnerProfiles(np.arange(n), parts)


def test_svd_dims_stay_below_the_sample_rows_and_columns():
    """Each projection keeps at most (columns - 1) and (rows - 1) dimensions, and at least one."""
    # 4 learners, 3 courses, profiles 4 x 3 = 12 wide: interactions min(32, 3 - 1, 4 - 1) = 2,
    # profile min(16, 12 - 1, 4 - 1) = 3, plus the two context columns
    interactions, profiles = _space_inputs(4, 3, 3)
    space = ClusterSpace(ClusterConfig()).fit(interactions, profiles)
    features = space.transform(interactions, np.full(4, 1.0), np.full(4, 0.5))
    assert features.shape == (4, 2 + 3 + 2)
    assert [svd.n_components for svd in space.svd] == [2, 3]
    # 5 learners, 2 courses: min(32, 2 - 1, 5 - 1) = 1 dimension of interactions
    interactions, profiles = _space_inputs(5, 2, 3)
    space = ClusterSpace(ClusterConfig(profile_dims=2)).fit(interactions, profiles)
    assert [svd.n_components for svd in space.svd] == [1, 2]


def test_projections_fitted_on_every_learner_are_seeded_truncated_svds():
    """With fit_sample >= learners each projection is sklearn's TruncatedSVD(dims, random_state=seed) of all
    the rows (60 x 40 and 60 x 32 noise: the randomized solver's result depends on the seed)."""
    interactions, profiles = _space_inputs(60, 40, 8, seed=2)
    config = ClusterConfig(svd_dims=2, profile_dims=2, fit_sample=60, seed=3)
    space = ClusterSpace(config).fit(interactions, profiles)
    for fitted, matrix in zip(space.svd, (interactions, profiles.stacked())):
        reference = TruncatedSVD(2, random_state=3).fit(matrix)
        np.testing.assert_array_equal(fitted.components_, reference.components_)
    # another seed gives other projections: the comparison above can tell seeds apart
    other = TruncatedSVD(2, random_state=4).fit(interactions)
    assert not np.array_equal(space.svd[0].components_, other.components_)


def test_projections_fitted_on_a_seeded_sample_without_replacement():
    """Below fit_sample the rows are np.sort(default_rng(seed).choice(n, fit_sample, replace=False))."""
    interactions, profiles = _space_inputs(60, 40, 8, seed=2)
    config = ClusterConfig(svd_dims=2, profile_dims=2, fit_sample=30, seed=3)
    space = ClusterSpace(config).fit(interactions, profiles)
    rows = np.sort(np.random.default_rng(3).choice(60, 30, replace=False))
    reference = TruncatedSVD(2, random_state=3).fit(interactions[rows])
    np.testing.assert_array_equal(space.svd[0].components_, reference.components_)
    reference = TruncatedSVD(2, random_state=3).fit(profiles.stacked(rows))
    np.testing.assert_array_equal(space.svd[1].components_, reference.components_)


def test_profile_block_built_in_batches_is_float32_unit_rows_of_every_learner():
    interactions, profiles = _space_inputs(20, 6, 3, seed=5)
    space = ClusterSpace(ClusterConfig(svd_dims=2, profile_dims=3)).fit(interactions, profiles, batch=7)
    assert space.profile_block.dtype == np.float32 and space.profile_block.shape == (20, 3)
    whole = normalize(space.svd[1].transform(profiles.stacked()))  # all rows at once
    np.testing.assert_allclose(space.profile_block, whole, rtol=1e-5, atol=1e-6)


# Four corners of a 2 x 1.8 rectangle, 25 learners on each: splitting left | right leaves each learner 1.8
# from the other side of its cluster, top / bottom 2. Left | right is the better k-means optimum, top / bottom
# a stable one (each corner stays nearer its own row's centre).
CORNERS = np.repeat([[0.0, 0.0], [0.0, 1.8], [2.0, 0.0], [2.0, 1.8]], 25, axis=0)
LEFT_RIGHT, TOP_BOTTOM = np.repeat([0, 0, 1, 1], 25), np.repeat([0, 1, 0, 1], 25)


def _corner_silhouette(near: float, far: float) -> float:
    """Silhouette of a corner learner: 25 - 1 others at 0 and 25 at ``near`` in its cluster, the other
    cluster 25 at ``far`` and 25 at the diagonal (2^2 + 1.8^2)^0.5."""
    a = 25 * near / 49
    b = (far + np.hypot(2.0, 1.8)) / 2
    return (b - a) / max(a, b)


def _same_partition(labels, expected) -> bool:
    return np.array_equal(labels, expected) or np.array_equal(labels, 1 - expected)


def test_kmeans_without_a_warm_start_finds_the_better_split_and_scores_it():
    labels, centroids, k, scores = kmeans(CORNERS, ClusterConfig(k=2))
    assert k == 2 and _same_partition(labels, LEFT_RIGHT)
    np.testing.assert_allclose(np.sort(centroids[:, 0]), [0.0, 2.0])
    assert scores == {2: pytest.approx(_corner_silhouette(1.8, 2.0))}


def test_kmeans_warm_starts_from_the_previous_centroids_once_without_a_warning():
    """Started at the row centres the one run stays in the top / bottom optimum; restarts would leave it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn warns when an explicit init is asked for several runs
        labels, centroids, k, scores = kmeans(
            CORNERS, ClusterConfig(k=2), init=np.array([[1.0, 0.0], [1.0, 1.8]])
        )
    assert k == 2 and _same_partition(labels, TOP_BOTTOM)
    np.testing.assert_allclose(np.sort(centroids[:, 1]), [0.0, 1.8])
    assert scores == {2: pytest.approx(_corner_silhouette(2.0, 1.8))}
    # previous centroids of another k are ignored: seeded restarts find left | right
    wrong_k = np.array([[1.0, 0.0], [1.0, 1.8], [1.0, 0.9]])
    assert _same_partition(kmeans(CORNERS, ClusterConfig(k=2), init=wrong_k)[0], LEFT_RIGHT)


def test_a_silhouette_sample_in_one_cluster_scores_minus_one():
    """One scored learner can only be in one cluster: no silhouette, the worst score -1."""
    assert kmeans(CORNERS, ClusterConfig(k=2, silhouette_sample=1))[3] == {2: -1.0}


def test_k_candidates_stop_one_below_the_number_of_learners():
    """Four learners: a silhouette needs at most 3 clusters, so k_range (2, 16) tries 2 and 3."""
    four = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 0.0], [5.0, 1.0]])
    _, _, k, scores = kmeans(four, ClusterConfig(k_range=(2, 16)))
    assert set(scores) == {2, 3} and k == 2  # two pairs: k 2 has the best silhouette


def test_kmeans_is_sklearns_seeded_minibatch_kmeans_with_three_runs_of_4096_batches():
    """Uniform noise (no cluster structure, so the result depends on every setting) of 4,200 learners, more
    than one batch: the fit equals MiniBatchKMeans(k, random_state=seed, batch_size=4096, n_init=3)."""
    features = np.random.default_rng(2).random((4200, 2))
    labels, centroids, _, _ = kmeans(features, ClusterConfig(k=3, seed=7, silhouette_sample=50))
    reference = MiniBatchKMeans(3, random_state=7, batch_size=4096, n_init=3).fit(features)
    np.testing.assert_array_equal(centroids, reference.cluster_centers_)
    np.testing.assert_array_equal(labels, reference.labels_)


def test_kmeans_with_one_seed_repeats_itself_and_another_seed_differs():
    """The silhouette sample and the fits are seeded: the same seed gives the same clusters and scores."""
    features = np.random.default_rng(4).random((150, 2))
    config = ClusterConfig(k_range=(2, 3), fit_sample=100, silhouette_sample=40, seed=5)
    first, again = kmeans(features, config), kmeans(features, config)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert first[2:] == again[2:]
    other = kmeans(features, ClusterConfig(k_range=(2, 3), fit_sample=100, silhouette_sample=40, seed=6))
    assert other[3] != first[3]


def test_dbscan_eps_is_the_median_distance_to_the_min_samples_th_neighbour():
    """Two groups 0, 1, 3, 4 and 6.8, 7.8, 9.8, 10.8 (min_samples 2): the second-nearest other learner is
    3, 2, 2, 2.8 away (and mirrored), median eps 2.4 < the 2.8 gap: two clusters. The nearest (eps 1) would
    split them into pairs; the third-nearest (eps 3) would join them."""
    points = np.array([0.0, 1.0, 3.0, 4.0, 6.8, 7.8, 9.8, 10.8])[:, None]
    labels = dbscan(points, ClusterConfig(dbscan_min_samples=2))
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_dbscan_duplicates_fall_back_to_a_tiny_eps():
    """Five identical learners and one 0.5 away: the median distance is 0, eps falls back to 0.001, so the
    sixth is noise."""
    points = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.5])[:, None]
    assert dbscan(points, ClusterConfig(dbscan_min_samples=2)).tolist() == [0, 0, 0, 0, 0, -1]


def test_dbscan_runs_on_a_seeded_sample_without_replacement():
    """30 of 40 learners: those of np.sort(default_rng(seed).choice(40, 30, replace=False)); the rest -2."""
    features = np.random.default_rng(3).normal(size=(40, 2))
    labels = dbscan(features, ClusterConfig(dbscan_max_learners=30, dbscan_min_samples=3, seed=4))
    sample = np.sort(np.random.default_rng(4).choice(40, 30, replace=False))
    assert np.flatnonzero(labels != -2).tolist() == sample.tolist()
