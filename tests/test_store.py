"""The model store: typed entries round-trip, a missing entry is None or a clear error, a failed write keeps
the last good value."""

from __future__ import annotations

import numpy as np
import pytest

from coursepilot.home import ProjectHome
from coursepilot.models.store import Entry, ModelStore
from coursepilot.peers.tuning import PeerTuning
from coursepilot.stored import ALS, HYBRID, PEER_CENTROIDS, PEER_WEIGHTS, Centroids, HybridChoice


@pytest.fixture
def store(tmp_path) -> ModelStore:
    return ModelStore(ProjectHome.resolve(tmp_path / "home").ensure())


def test_typed_entries_round_trip_as_their_own_types(store):
    choice = HybridChoice(
        {"ease": 1.0, "popularity": 0.1}, {"ease": {"regularization": 50.0}}, "/b", 0.2, {"x": 0.3}
    )
    tuning = PeerTuning({"interaction": 0.6, "profile": 0.4}, 0.31, 120, {"interaction": 0.29})
    store.save(HYBRID, choice)
    store.save(PEER_WEIGHTS, tuning)
    assert store.load(HYBRID) == choice and isinstance(store.load(HYBRID), HybridChoice)
    assert store.load(PEER_WEIGHTS) == tuning


def test_arrays_are_kept_beside_the_value_without_pickles(store):
    centroids, labels = np.arange(6.0).reshape(3, 2), np.array([0, 2, 1])
    store.save(PEER_CENTROIDS, Centroids(3, 12), {"centroids": centroids, "labels": labels})
    assert store.load(PEER_CENTROIDS) == Centroids(3, 12)
    arrays = store.arrays(PEER_CENTROIDS)
    assert np.array_equal(arrays["centroids"], centroids) and np.array_equal(arrays["labels"], labels)
    with np.load(store.path(PEER_CENTROIDS, ".npz"), allow_pickle=False) as saved:  # plain arrays only
        assert set(saved.files) == {"centroids", "labels"}


def test_a_missing_entry_is_none_for_last_and_a_clear_error_for_load(store):
    assert store.last(ALS) is None
    with pytest.raises(FileNotFoundError, match="model 'als' has not been trained in this project home"):
        store.load(ALS)


def test_a_value_that_cannot_be_written_leaves_the_last_good_one(store):
    store.save(ALS, {"factors": 64})
    with pytest.raises(TypeError):
        store.save(ALS, {"factors": object()})  # not JSON
    assert store.load(ALS) == {"factors": 64}
    assert store.last(Entry("bpr", dict)) is None
