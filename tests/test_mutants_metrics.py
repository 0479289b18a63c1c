"""Ranking-metric edge cases by hand (kills mutants of coursepilot/evaluation/metrics.py)."""

from __future__ import annotations

import pytest

from coursepilot.evaluation.metrics import ranking_metrics


def test_a_list_without_a_hit_scores_zero_everywhere_including_mrr():
    m = ranking_metrics(["x", "y", "z"], {"a"}, 3)
    assert m == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "hit": 0.0, "ndcg": 0.0, "map": 0.0, "mrr": 0.0}


def test_mrr_reads_the_whole_list_beyond_k():
    m = ranking_metrics(["x", "y", "a"], {"a"}, 2)  # the first hit at rank 3, outside the top 2
    assert m["hit"] == 0.0 and m["mrr"] == pytest.approx(1 / 3)


def test_a_learner_without_relevant_courses_is_refused():
    with pytest.raises(ValueError, match="^a learner with no relevant course cannot be scored$"):
        ranking_metrics(["a"], set(), 1)


def test_vectorised_metrics_for_three_learners_by_hand():
    import numpy as np

    from coursepilot.evaluation.metrics import metrics_from_hits

    hits = np.array([[True, False, True], [False, False, False], [False, True, False]])
    out = metrics_from_hits(hits, np.array([2, 1, 3]), (3,), n_candidates=np.array([10, 10, 10]))
    np.testing.assert_allclose(out["precision@3"], [2 / 3, 0, 1 / 3])
    np.testing.assert_allclose(out["recall@3"], [1, 0, 1 / 3])
    np.testing.assert_allclose(out["f1@3"], [0.8, 0, 1 / 3])
    np.testing.assert_allclose(out["hit@3"], [1, 0, 1])
    np.testing.assert_allclose(out["map@3"], [(1 + 2 / 3) / 2, 0, (1 / 2) / 3])
    # accuracy = (TP + TN) / candidates, TN = candidates - k - (relevant - TP): 7, 6, 5
    np.testing.assert_allclose(out["accuracy@3"], [(2 + 7) / 10, (0 + 6) / 10, (1 + 5) / 10])
    np.testing.assert_allclose(out["mrr"], [1, 0, 1 / 2])
