"""The neural hybrid against its CF input (ALS) on a small constructed dataset: never below it on
validation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from coursepilot.evaluation.protocol import evaluate
from coursepilot.models.base import TrainData
from coursepilot.models.factors import Factorisation
from coursepilot.models.neural import NeuralHybrid
from coursepilot.ranking import relevant_sets

ALS = {"factors": 8, "iterations": 10, "regularization": 0.1}
TOPICS, PER_TOPIC, LEARNERS, TAKEN, HELD = 4, 15, 400, 8, 2


@pytest.fixture(scope="module")
def carved() -> tuple[TrainData, TrainData, dict]:
    """(all training data, training minus the validation carve, {learner row: validation columns}).

    Each learner takes ``TAKEN`` courses, mostly popular ones of their topic; the course text vectors
    are the topic plus noise. ``HELD`` of each learner's courses form the validation carve.
    """
    rng = np.random.default_rng(5)
    n_courses = TOPICS * PER_TOPIC
    topics = rng.integers(TOPICS, size=LEARNERS)
    weights = np.full((TOPICS, n_courses), 0.02)  # per topic: its courses by popularity, a few others
    for topic in range(TOPICS):
        weights[topic, topic * PER_TOPIC : (topic + 1) * PER_TOPIC] += 1.0 / np.arange(1, PER_TOPIC + 1)
    rows = np.repeat(np.arange(LEARNERS), TAKEN)
    cols = np.concatenate(
        [rng.choice(n_courses, TAKEN, replace=False, p=weights[t] / weights[t].sum()) for t in topics]
    )
    vectors = np.repeat(np.eye(TOPICS, 8), PER_TOPIC, axis=0) + 0.3 * rng.standard_normal((n_courses, 8))

    def matrix(kept: np.ndarray) -> sparse.csr_matrix:
        ones = np.ones(kept.sum(), np.float32)
        return sparse.csr_matrix((ones, (rows[kept], cols[kept])), shape=(LEARNERS, n_courses))

    held = np.arange(len(rows)) % TAKEN >= TAKEN - HELD  # each learner's last HELD courses
    data = TrainData(
        np.array([f"l{i}" for i in range(LEARNERS)], dtype=object),
        np.array([f"c{i}" for i in range(n_courses)], dtype=object),
        matrix(np.ones(len(rows), bool)),
        (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32),
    )
    return data, data.with_matrix(matrix(~held)), relevant_sets(matrix(held))


def ndcg(model, valid: dict) -> float:
    return evaluate(model, valid, ks=(10,))["ndcg@10"]


def test_the_fitted_network_ranks_validation_at_least_as_well_as_its_als_input(carved):
    _, fit_data, valid = carved
    # fitted on the carved data itself, so that the final model can be scored on the validation carve
    model = NeuralHybrid(dim=16, max_epochs=6, patience=2, batch_size=256, seed=1, als_params=ALS)
    model.fit(fit_data, fit_data, valid)
    als = ndcg(Factorisation("als", **ALS).fit(fit_data), valid)
    validated = [h for h in model.history if "valid_ndcg@10" in h]
    assert validated[0] == {"epoch": 0, "valid_ndcg@10": als}  # epoch 0 is the CF input alone
    best = max(validated, key=lambda h: h["valid_ndcg@10"])
    # the text topics let it improve on ALS
    assert model.best_epochs == best["epoch"] >= 1 and not model.fell_back
    # then retrained for the best number of epochs
    assert len(model.history) == len(validated) + model.best_epochs
    assert ndcg(model, valid) == best["valid_ndcg@10"] >= als


def test_a_network_that_cannot_help_falls_back_to_its_als_input(carved):
    data, fit_data, valid = carved
    # one epoch at a huge rate
    diverging = dict(dim=16, max_epochs=1, learning_rate=1e4, batch_size=64, als_params=ALS)
    diverged = NeuralHybrid(**diverging).fit(data, fit_data, valid)
    # worse than ALS after its epoch
    assert diverged.history[1]["valid_ndcg@10"] < diverged.history[0]["valid_ndcg@10"]
    assert diverged.fell_back and diverged.best_epochs == 0 and "ALS" in diverged.fallback_reason
    als = Factorisation("als", **ALS).fit(data)
    rows = np.arange(LEARNERS)
    np.testing.assert_array_equal(diverged.score(rows), als.score(rows))
    np.testing.assert_array_equal(diverged.recommend(rows), als.recommend(rows))
    # the given ALS, not refitted
    assert NeuralHybrid(**diverging).fit(data, fit_data, valid, als=als).cf is als


def test_the_same_seed_trains_the_same_network(carved):
    data, _, _ = carved
    rows = np.arange(50)

    def scores(seed: int) -> np.ndarray:
        model = NeuralHybrid(dim=16, max_epochs=2, batch_size=256, seed=seed, als_params=ALS).fit(data)
        # nothing to fall back on
        assert (model.fell_back, model.fallback_reason, model.best_epochs) == (False, "", 2)
        return model.score(rows)

    first = scores(3)
    np.testing.assert_array_equal(first, scores(3))
    assert not np.array_equal(first, scores(4))
