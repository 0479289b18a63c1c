"""Ranking metrics against hand-computed cases and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coursepilot.evaluation.metrics import hit_matrix, metrics_from_hits, ranking_metrics


def test_hand_computed_case():
    m = ranking_metrics(["a", "x", "b", "y", "z"], {"a", "b", "c"}, 5)
    assert m["precision"] == pytest.approx(2 / 5) and m["recall"] == pytest.approx(2 / 3)
    assert m["ndcg"] == pytest.approx((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3) + 1 / np.log2(4)))
    assert m["map"] == pytest.approx((1 / 1 + 2 / 3) / 3) and m["mrr"] == 1.0 and m["hit"] == 1.0


def test_perfect_ranking_scores_one_and_short_lists_count_as_misses():
    perfect = ranking_metrics(["a", "b"], {"a", "b"}, 2)
    assert all(perfect[k] == 1.0 for k in ("precision", "recall", "f1", "ndcg", "map", "hit", "mrr"))
    short = ranking_metrics(["a"], {"a", "b"}, 10)  # k larger than the list
    assert short["precision"] == pytest.approx(0.1) and short["recall"] == pytest.approx(0.5)


def test_hit_matrix_looks_up_each_learner_in_their_own_set():
    rng = np.random.default_rng(0)
    top = rng.integers(-1, 50, (200, 10))
    relevant = [set(rng.integers(0, 50, rng.integers(1, 8)).tolist()) for _ in range(200)]
    relevant[3] = {int(top[3, 0]) + 1000}  # an item above every ranked one
    expected = np.array([[item in rel for item in row] for row, rel in zip(top.tolist(), relevant)])
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(hit_matrix(top, relevant), expected)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 30), min_size=10, max_size=10, unique=True),
    st.sets(st.integers(0, 30), min_size=1, max_size=12),
)
def test_vectorised_metrics_match_and_stay_in_unit_range(ranked, relevant):
    scalar = {k: ranking_metrics(ranked, relevant, k) for k in (1, 5, 10)}
    hits = hit_matrix(np.array([ranked]), [relevant])
    vector = metrics_from_hits(hits, np.array([len(relevant)]), (1, 5, 10), np.array([31]))
    for k in (1, 5, 10):
        for name in ("precision", "recall", "f1", "hit", "ndcg", "map"):
            assert vector[f"{name}@{k}"][0] == pytest.approx(scalar[k][name])
            assert 0.0 <= vector[f"{name}@{k}"][0] <= 1.0
        assert 0.0 <= vector[f"accuracy@{k}"][0] <= 1.0
    assert vector["mrr"][0] == pytest.approx(scalar[10]["mrr"] if scalar[10]["hit"] else 0.0)
