"""Bounded evaluation at scale: seeded samples, sub-populations, capped scoring, the report's sample."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from coursepilot.evaluation.metrics import hit_matrix, metrics_from_hits
from coursepilot.evaluation.protocol import evaluate
from coursepilot.evaluation.report import isolated_copy
from coursepilot.models.factors import Factorisation
from coursepilot.peers.ranking import cf_peers, evaluate_peers, relevant_counts, scored_candidates
from coursepilot.sampling import restrict, sample_learners, sample_rows, tuning_population


def test_sample_rows_is_seeded_sorted_and_keeps_small_sets_whole():
    assert sample_rows(10, 10) is None and sample_rows(3, 10) is None
    rows = sample_rows(1000, 50, seed=4)
    assert len(rows) == 50 == len(set(rows.tolist())) and (np.diff(rows) > 0).all() and rows.max() < 1000
    assert np.array_equal(rows, sample_rows(1000, 50, seed=4)) and not np.array_equal(
        rows, sample_rows(1000, 50, seed=5)
    )


def test_sample_learners_and_restrict():
    relevant = {r: {r % 7} for r in range(0, 300, 3)}  # 100 learners
    assert sample_learners(relevant, 100) is relevant
    sampled = sample_learners(relevant, 20, seed=1)
    assert len(sampled) == 20 and all(relevant[k] == v for k, v in sampled.items())
    # order of the dict is irrelevant
    assert sampled == sample_learners(dict(reversed(list(relevant.items()))), 20, seed=1)
    rows = np.array([3, 9, 10, 297])
    assert restrict(relevant, rows) == {0: {3}, 1: {2}, 3: {297 % 7}}


def test_subset_keeps_rows_and_content(data):
    rows = np.array([5, 2, 40])
    sub = data.subset(rows)
    assert sub.shape == (3, data.shape[1]) and list(sub.learner_ids) == list(data.learner_ids[rows])
    assert (sub.matrix != data.matrix[rows]).nnz == 0
    np.testing.assert_array_equal(sub.p_adaptive, data.p_adaptive[rows])
    assert sub.course_vectors is data.course_vectors and sub.difficulty is data.difficulty


def test_evaluate_scores_a_seeded_sample_above_the_cap(data, test_sets):
    model = Factorisation("als", factors=8, iterations=5).fit(data)
    sampled = sample_learners(test_sets, 200)
    rows = np.array(sorted(sampled))
    sets = [sampled[int(r)] for r in rows]
    by_hand = metrics_from_hits(
        hit_matrix(model.recommend(rows, 10), sets), np.array([len(s) for s in sets]), (10,)
    )
    capped = evaluate(model, test_sets, ks=(10,), max_learners=200)
    assert capped["ndcg@10"] == pytest.approx(by_hand["ndcg@10"].mean())
    assert evaluate(model, test_sets, ks=(10,))["ndcg@10"] != pytest.approx(capped["ndcg@10"], abs=1e-12)


def _random_binary(n: int, m: int, density: float, seed: int) -> sparse.csr_matrix:
    return (sparse.random(n, m, density, random_state=seed, format="csr") > 0).astype(np.float32)


def test_cf_peers_for_some_rows_match_the_full_computation():
    matrix = _random_binary(300, 40, 0.1, 1)
    rows = np.array([0, 17, 299])
    full, some = cf_peers(matrix, 5), cf_peers(matrix, 5, rows)
    np.testing.assert_array_equal(some[rows], full[rows])
    assert (np.delete(some, rows, axis=0) == -1).all()


def test_peer_evaluation_on_a_sample_equals_the_evaluation_of_those_learners():
    test = _random_binary(400, 30, 0.05, 2)
    ranked = np.random.default_rng(0).integers(0, 400, size=(400, 10))
    candidates = scored_candidates(test, 100, seed=3)
    assert len(candidates) == 100 and (np.diff(test.indptr)[candidates] > 0).all()
    scores, per, evaluated = evaluate_peers(test, {"x": ranked}, max_learners=100, seed=3)
    counts = relevant_counts(test, candidates)
    assert evaluated == int((counts > 0).sum()) <= 100 and len(per["x"]) == evaluated
    whole, _, everyone = evaluate_peers(test, {"x": ranked})
    assert everyone > evaluated and relevant_counts(test)[candidates].tolist() == counts.tolist()


def test_report_copy_holds_a_seeded_sample_of_learners(warehouse):
    learners = warehouse.execute("SELECT count(*) FROM learners").fetchone()[0]
    mem = isolated_copy(warehouse, max_learners=300)
    try:
        assert mem.execute("SELECT count(*) FROM learners").fetchone()[0] == 300 < learners
        outside = mem.execute(
            "SELECT count(*) FROM interactions WHERE learner_id NOT IN (SELECT learner_id FROM learners)"
        )
        assert outside.fetchone()[0] == 0
        assert (
            mem.execute("SELECT count(*) FROM courses").fetchone()[0]
            == warehouse.execute("SELECT count(*) FROM courses").fetchone()[0]
        )
        ids = mem.execute("SELECT learner_id FROM learners ORDER BY 1").fetchall()
    finally:
        mem.close()
    again = isolated_copy(warehouse, max_learners=300)
    assert again.execute("SELECT learner_id FROM learners ORDER BY 1").fetchall() == ids
    again.close()
    whole = isolated_copy(warehouse)
    assert whole.execute("SELECT count(*) FROM learners").fetchone()[0] == learners
    whole.close()


def test_tuning_population_keeps_the_sampled_learners_and_their_validation_sets(data, test_sets):
    fit_data, valid = tuning_population(data, test_sets, limit=60, seed=3)
    rows = sample_rows(data.shape[0], 60, seed=3)
    assert fit_data.shape == (60, data.shape[1]) and list(fit_data.learner_ids) == list(
        data.learner_ids[rows]
    )
    assert valid == restrict(test_sets, rows) and valid and max(valid) < 60
    whole = tuning_population(data, test_sets, limit=data.shape[0])
    assert whole[0] is data and whole[1] is test_sets
