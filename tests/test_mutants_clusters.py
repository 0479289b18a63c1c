"""The cluster space, DBSCAN's sample, label alignment and the latest state per window by hand (kills
mutants of coursepilot/peers/clusters.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from coursepilot.peers.clusters import ClusterConfig, ClusterSpace, align_labels, dbscan, latest_by_window
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
