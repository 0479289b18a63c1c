"""Multi-factor profiles (equations 14-19) and nearest-course search."""

from __future__ import annotations

import numpy as np
import pytest

from coursepilot.neighbours import CourseIndex
from coursepilot.profiles import LearnerProfiles, normalise_rows, weighted_profiles


def test_weighted_profile_is_normalised_weighted_mean():
    courses = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    out = weighted_profiles(np.array([0, 0, 1]), np.array([0, 1, 1]), np.array([3.0, 1.0, 2.0]), courses, n_learners=3)
    assert np.allclose(out[0], np.array([3.0, 1.0]) / np.sqrt(10))
    assert np.allclose(out[1], [0.0, 1.0]) and np.allclose(out[2], 0.0)  # learner 2 took nothing


def test_similarity_equals_cosine_of_the_concatenation():
    rng = np.random.default_rng(0)
    parts = {p: normalise_rows(rng.normal(size=(5, 8)).astype(np.float32)) for p in ("desc", "job", "soft", "theme")}
    parts["job"][3] = 0  # unknown job
    profiles = LearnerProfiles(np.arange(5), parts)
    stacked = profiles.stacked()
    expected = stacked @ stacked[3] / (np.linalg.norm(stacked, axis=1) * np.linalg.norm(stacked[3]))
    assert np.allclose(profiles.similarity(3), expected, atol=1e-5)
    assert profiles.similarity(3)[3] == pytest.approx(1.0)


def test_usearch_index_agrees_with_exact_search():
    rng = np.random.default_rng(1)
    vectors = normalise_rows(rng.normal(size=(2000, 32)).astype(np.float32))
    exact = CourseIndex(np.arange(2000), vectors)
    ann = CourseIndex(np.arange(2000), vectors, exact_limit=0)
    assert (exact.kind, ann.kind) == ("exact", "usearch-hnsw")
    top_exact, sims = exact.search(vectors[:50], 10)
    top_ann, _ = ann.search(vectors[:50], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_exact, top_ann)])
    assert recall > 0.9 and (top_exact[:, 0] == np.arange(50)).all() and np.all(np.diff(sims, axis=1) <= 1e-6)
    assert all(cid != 7 for cid, _ in exact.similar(7, 5))
    with pytest.raises(KeyError):
        exact.similar(99999)
