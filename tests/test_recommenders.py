"""Every recommender through one interface on synthetic data, the hybrid's tuning, cold start, serving."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from coursepilot.embeddings import embed_texts
from coursepilot.evaluation.protocol import evaluate, held_out
from coursepilot.home import ProjectHome
from coursepilot.models.base import TrainData, load_train_data
from coursepilot.models.catalogue import MODELS as SPECS
from coursepilot.models.catalogue import build
from coursepilot.models.factors import Factorisation
from coursepilot.models.fusion import Fusion
from coursepilot.models.hybrid import Hybrid, blend_tops, level_targets_scorer, tune, validation_data
from coursepilot.models.simple import Content, Popularity
from coursepilot.models.store import Entry, ModelStore
from coursepilot.ranking import SCORING_CELLS, batch_rows, minmax_rows, top_k
from coursepilot.registry import ServingModel, save_bundle
from coursepilot.sampling import restrict, sample_rows
from tests.fixed_scores import FixedScores
from tests.recommender_data import FUSION_PARAMS, SCALE, small_fusion


def test_a_sampled_load_equals_the_sample_of_everyone(warehouse, data):
    rows = sample_rows(data.shape[0], 400, seed=4)
    sampled, everyone = load_train_data(warehouse, SCALE, max_learners=400, seed=4), data.subset(rows)
    np.testing.assert_array_equal(sampled.learner_ids, everyone.learner_ids)
    np.testing.assert_array_equal(sampled.course_ids, everyone.course_ids)
    assert (sampled.matrix != everyone.matrix).nnz == 0 and sampled.matrix.nnz > 0
    np.testing.assert_array_equal(sampled.p_adaptive, everyone.p_adaptive)
    assert held_out(warehouse, sampled, "test", SCALE) == restrict(
        held_out(warehouse, data, "test", SCALE), rows
    )
    # no more than that: everyone
    assert load_train_data(warehouse, SCALE, max_learners=data.shape[0]).shape == data.shape


MODELS = {
    **{spec.name: (lambda name=spec.name: build(name)) for spec in SPECS},
    "bpr": lambda: build("bpr", {"factors": 16}),
    "hybrid_eq6": lambda: Hybrid(Factorisation("als"), Content("minilm"), 0.7, 0.1),
    "fusion": small_fusion,
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_never_recommends_taken_courses(data, name):
    model = MODELS[name]().fit(data)
    rows = np.arange(0, data.shape[0], 7)
    top = model.recommend(rows, 10)
    assert top.shape == (len(rows), 10)
    for row, items in zip(rows, top):
        assert not set(items) & set(data.matrix[row].indices)
        assert len(set(items)) == 10


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_is_deterministic_agrees_with_its_scores_and_restores(data, name, tmp_path):
    rows = np.r_[np.arange(0, data.shape[0], 97), np.flatnonzero(np.diff(data.matrix.indptr) == 0)[:2]]
    model, again = MODELS[name]().fit(data), MODELS[name]().fit(data)
    scores = model.score(rows)
    # learners with no history, and courses nobody took in training (the cold-course split), score too
    assert (np.diff(data.matrix.indptr)[rows] == 0).any() and (data.matrix.getnnz(axis=0) == 0).any()
    assert scores.shape == (len(rows), data.shape[1]) and np.isfinite(scores).all()
    np.testing.assert_allclose(again.score(rows), scores, rtol=1e-5, atol=1e-6)
    ranked = np.where(data.matrix[rows].toarray() > 0, -np.inf, scores)
    top = model.recommend(rows, 5)
    np.testing.assert_allclose(
        np.take_along_axis(ranked, top, axis=1), -np.sort(-ranked, axis=1)[:, :5], rtol=1e-6
    )
    if isinstance(model, (Fusion, Hybrid)):
        return  # composites restore through their parts (the fusion: the serving test)
    store, entry = ModelStore(ProjectHome.resolve(tmp_path).ensure()), Entry(name, dict)
    store.save(entry, getattr(model, "params", {}), model.state())  # through the files the assets write
    restored = MODELS[name]().restore(data, store.arrays(entry))
    np.testing.assert_array_equal(restored.score(rows), scores)


def test_collaborative_models_and_hybrid_beat_popularity(data, test_sets):
    # the latent model draws 30% of interactions from hidden tastes only CF can see, and theme choices
    # that content sees: CF, and the hybrid of CF and content, must beat popularity
    popularity = evaluate(Popularity().fit(data), test_sets)["ndcg@10"]
    for name in ("als", "bpr", "user_knn", "ease", "item_knn", "hybrid_eq6", "fusion"):
        assert evaluate(MODELS[name]().fit(data), test_sets)["ndcg@10"] > popularity * 1.3, name


def test_content_models_beat_a_random_ranking(data, test_sets):
    rng = np.random.default_rng(0)

    class RandomScores(Popularity):
        def score(self, rows):
            return rng.random((len(rows), self.data.shape[1]))

    random = evaluate(RandomScores().fit(data), test_sets)["ndcg@10"]
    for name in ("content_minilm", "content_tfidf"):
        assert evaluate(MODELS[name]().fit(data), test_sets)["ndcg@10"] > random * 1.5, name


@pytest.mark.parametrize("kind", ["minilm", "tfidf"])
def test_content_scores_from_the_gram_matrix_equal_per_learner_profiles(data, kind):
    rows = np.r_[np.arange(0, data.shape[0], 5), np.flatnonzero(np.diff(data.matrix.indptr) == 0)[:3]]
    gram = Content(kind).fit(data)
    profiles = Content(kind, gram_courses=0).fit(data)
    assert gram.gram is not None and profiles.gram is None
    expected = profiles.score(rows)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(gram.score(rows), expected, atol=1e-5)


def test_minmax_rows_spans_the_finite_scores_of_each_row():
    scores = np.array([[2.0, 4.0, 3.0], [5.0, 5.0, 5.0], [np.nan, 1.0, 3.0], [1.0, np.inf, 2.0]])
    np.testing.assert_allclose(minmax_rows(scores[:2]), [[0, 1, 0.5], [0, 0, 0]])
    mixed = minmax_rows(scores)
    np.testing.assert_allclose(mixed[:3], [[0, 1, 0.5], [0, 0, 0], [0, 0, 1]])
    assert mixed[3, 0] == 0 and mixed[3, 2] == 1
    # weighted, into a given buffer, on either path
    for rows in (scores[:2], scores):
        buffer = np.full(rows.shape, 7.0)
        assert minmax_rows(rows, 0.25, out=buffer) is buffer
        np.testing.assert_allclose(buffer, 0.25 * minmax_rows(rows))
    assert minmax_rows(scores[:2].astype(np.float32), 2.0).dtype == np.float32


def test_scoring_batches_hold_about_a_million_scores_and_do_not_change_the_ranking(fusion):
    assert batch_rows(5_055) == 207 and batch_rows(10**7) == 1 and batch_rows(0) == SCORING_CELLS
    rows = np.arange(fusion.data.shape[0])
    scores = fusion.score(rows)
    ranked = [np.take_along_axis(scores, fusion.recommend(rows, 10, batch), axis=1) for batch in (None, 97)]
    np.testing.assert_array_equal(*ranked)  # the same scores at each rank (ties may swap courses)
    assert np.ptp(ranked[0]) > 0


def test_equation_6_is_alpha_cf_plus_one_minus_alpha_content_plus_the_level_term(data):
    hybrid = Hybrid(Popularity(), Content("tfidf"), alpha=0.3, level_weight=0.2).fit(data)
    rows = np.arange(6)
    cf, content = (
        minmax_rows(Popularity().fit(data).score(rows)),
        minmax_rows(Content("tfidf").fit(data).score(rows)),
    )
    np.testing.assert_allclose(
        hybrid.score(rows), 0.3 * cf + 0.7 * content + 0.2 * hybrid.level(rows), atol=1e-6
    )
    assert np.ptp(content) > 0 and np.ptp(cf) > 0  # both terms carry something to get wrong


def test_level_term_is_one_minus_half_the_level_distance(data):
    hybrid = Hybrid(Popularity(), Popularity()).fit(
        data, targets=np.r_[np.nan, 0.0, 1.3, 2.0, np.full(data.shape[0] - 4, np.nan)]
    )
    hybrid.level_term.targets[0] = np.nan  # a learner without a training course of known difficulty
    rows = np.array([0, 1, 2, 3])
    targets, difficulty = hybrid.level_term.targets[rows][:, None], data.difficulty[None, :].astype(float)
    expected = np.where((difficulty >= 0) & ~np.isnan(targets), 1 - np.abs(targets - difficulty) / 2, 0.5)
    assert (data.difficulty >= 0).any()
    np.testing.assert_allclose(hybrid.level(rows), expected)
    np.testing.assert_allclose(minmax_rows(np.array([[1, 3, 5]])), [[0.0, 0.5, 1.0]])  # integer scores


def test_the_level_targets_scorer_equals_scoring_the_refitted_hybrid(warehouse, data):
    fit_data, valid, _ = validation_data(warehouse, data, SCALE)
    valid = dict(list(valid.items())[:300])
    hybrid = Hybrid(Factorisation("als"), Content("tfidf"), 0.6, 0.5).fit(fit_data)
    ndcg = level_targets_scorer(hybrid, fit_data, valid, batch=128)  # several batches
    rng = np.random.default_rng(2)
    for targets in (None, rng.uniform(0, 2, fit_data.shape[0]), np.zeros(fit_data.shape[0])):
        refitted = hybrid.fit(fit_data, fit_parts=False, targets=targets)
        assert ndcg(targets) == pytest.approx(evaluate(refitted, valid, ks=(10,))["ndcg@10"], abs=1e-12)
    assert ndcg(np.zeros(fit_data.shape[0])) != ndcg(np.full(fit_data.shape[0], 2.0))  # the targets matter


def test_grid_ranking_over_candidates_equals_ranking_every_course():
    rng = np.random.default_rng(3)
    rows, courses = 300, 400
    taste = rng.random((rows, 1))
    cf = (taste * rng.random((1, courses)) + 0.3 * rng.random((rows, courses))).astype(np.float32)
    content = rng.random((rows, courses)).astype(np.float32) ** 3
    level = (
        np.choose(rng.integers(0, 3, courses), [1.0, 0.75, 0.5])[None, :].repeat(rows, 0).astype(np.float32)
    )
    seen = rng.random((rows, courses)) < 0.05
    seen[:5, 8:] = True  # five learners with only 8 unseen courses
    points = [(alpha, weight) for alpha in (0.0, 0.3, 0.7, 1.0) for weight in (0.0, 0.2, 0.8, 5.0)]
    fast = blend_tops(cf, content, level, seen, points, candidates=20)
    for (alpha, weight), top in zip(points, fast):
        scores = np.where(seen, -np.inf, alpha * cf + (1 - alpha) * content + weight * level)
        full = top_k(scores, 10)
        # past the unseen courses, seen ones (-inf) in any order
        finite = np.isfinite(np.take_along_axis(scores, full, axis=1))
        np.testing.assert_array_equal(top[finite], full[finite])
        assert not np.isfinite(np.take_along_axis(scores, top, axis=1)[~finite]).any()


def test_tuning_never_reads_test(warehouse, data):
    fit_data, valid, _ = validation_data(warehouse, data, SCALE)
    before = tune(
        Hybrid(Factorisation("als"), Content("minilm")),
        fit_data,
        valid,
        alphas=(0.0, 0.5, 1.0),
        level_weights=(0.0, 0.2),
    )
    saved = warehouse.execute("SELECT * FROM split WHERE split = 'test'").df()
    test_pairs = "(learner_id, course_id) IN (SELECT learner_id, course_id FROM split WHERE split = 'test')"
    # scramble every test interaction (in the split, which carries it, and interactions): tuning must not see
    try:
        for table in ("split", "interactions"):
            warehouse.execute(
                f"UPDATE {table} SET rating = 6 - coalesce(rating, 3), watch_pct = 100 - watch_pct "
                f"WHERE {test_pairs}"
            )
        fit_again, valid_again, _ = validation_data(warehouse, data, SCALE)
        after = tune(
            Hybrid(Factorisation("als"), Content("minilm")),
            fit_again,
            valid_again,
            alphas=(0.0, 0.5, 1.0),
            level_weights=(0.0, 0.2),
        )
    finally:
        warehouse.execute(f"DELETE FROM interactions WHERE {test_pairs}")
        warehouse.execute("DELETE FROM split WHERE split = 'test'")
        warehouse.register("saved_test", saved)
        warehouse.execute("INSERT INTO split BY NAME SELECT * FROM saved_test")
        warehouse.execute("INSERT INTO interactions BY NAME SELECT * EXCLUDE (split) FROM saved_test")
    pd.testing.assert_frame_equal(before.grid, after.grid)
    assert not set(valid) - set(range(data.shape[0]))
    test_pairs = set(
        map(
            tuple,
            warehouse.execute("SELECT learner_id, course_id FROM split WHERE split = 'test'").fetchall(),
        )
    )
    valid_pairs = {(data.learner_ids[r], data.course_ids[c]) for r, cs in valid.items() for c in cs}
    assert not valid_pairs & test_pairs


@pytest.fixture(scope="module")
def serving(tmp_path_factory, data, fusion):
    folder = save_bundle(
        tmp_path_factory.mktemp("bundle") / "b",
        data,
        [f"course {c}" for c in data.course_ids],
        fusion,
        FUSION_PARAMS,
    )
    return ServingModel(folder)


def test_serving_scores_equal_the_pipeline_model(serving, fusion, data):
    # EASE's recency reads the interaction times
    assert data.times is not None and serving.data.times is not None
    rows = np.arange(0, data.shape[0], 50)
    np.testing.assert_allclose(serving.fusion.score(rows), fusion.score(rows), rtol=1e-6, atol=1e-7)


def test_serving_excludes_taken_and_explains(serving, data):
    row = int(np.argmax(np.diff(data.matrix.indptr)))
    learner = data.learner_ids[row]
    result = serving.for_learner(learner, 10)
    assert len(result) == 10 and result["course_id"].is_unique
    top = serving.fusion.recommend(np.array([row]), 10)[0]  # one scoring pass gives the same ranking
    assert list(result["course_id"]) == list(data.course_ids[top])
    np.testing.assert_allclose(result["score"], serving.fusion.score(np.array([row]))[0, top], rtol=1e-6)
    assert not set(result["course_id"]) & set(data.course_ids[data.matrix[row].indices])
    taken = {f"course {c}" for c in data.course_ids[data.matrix[row].indices]}
    for reason in result["reason"]:
        named = re.fullmatch(r"(?:learners who took|similar to) “(.+)”.*", reason)
        assert named or re.fullmatch(
            r"your peer group takes it \(\d+% of [\d,]+ peers\)|popular (?:now|with many learners)|at your "
            r"next level",
            reason,
        )
        assert not named or named.group(1) in taken  # the evidence is a course the learner took
    with pytest.raises(KeyError, match="unknown learner"):
        serving.for_learner("nobody")


def test_cold_start_learner_and_course(serving, warehouse, data):
    result = serving.predict(
        pd.DataFrame(
            {"learner_id": [""], "profile": ["accountant who uses Excel and SAP for budgeting"], "k": [8]}
        )
    )
    assert (
        len(result) == 8
        and result["course_id"].is_unique
        and (result["reason"] == "matches your profile").all()
    )
    themes = warehouse.execute("SELECT course_id, theme FROM courses").df().set_index("course_id")["theme"]
    assert (themes[result["course_id"]] == "Finance and Accounting").mean() >= 0.5
    cold = warehouse.execute(
        "SELECT DISTINCT course_id FROM split WHERE split = 'cold_course' ORDER BY 1 LIMIT 1"
    ).fetchone()[0]
    assert data.matrix[:, data.course_index([cold])[0]].nnz == 0  # never seen in training
    title, description = warehouse.execute(
        "SELECT title, description FROM courses WHERE course_id = ?", [cold]
    ).fetchone()
    found = serving.for_profile(embed_texts([f"{title}. {description}"])[0], 5)
    assert cold in set(found["course_id"])


def test_neural_hybrid_early_stops_on_validation_and_beats_popularity(warehouse, data, test_sets):
    from coursepilot.models.neural import NeuralHybrid

    fit_data, valid, _ = validation_data(warehouse, data, SCALE)
    model = NeuralHybrid(max_epochs=4, patience=1, batch_size=2048).fit(data, fit_data, valid)
    validated = [h for h in model.history if "valid_ndcg@10" in h]
    assert validated[0]["epoch"] == 0 and 0 <= model.best_epochs < len(validated) <= 5  # epoch 0: ALS alone
    assert model.best_epochs == max(validated, key=lambda h: h["valid_ndcg@10"])["epoch"]
    assert len(model.history) == len(validated) + model.best_epochs  # then retrained on all training data
    popularity = evaluate(Popularity().fit(data), test_sets)["ndcg@10"]
    assert evaluate(model, test_sets)["ndcg@10"] > popularity * 1.3
    top = model.recommend(np.arange(20), 10)
    assert all(not set(t) & set(data.matrix[r].indices) for r, t in enumerate(top))
    # every course at once (matrix products, serving and evaluation) scores as pair by pair (training)
    import torch

    rows = np.arange(12)
    with torch.no_grad():
        user, query = model.net.learners(model.p[rows], model.profiles[rows])
        keys, values = model.net.course_tokens(model.q, model.e)
        pairs = torch.cartesian_prod(torch.from_numpy(rows), torch.arange(data.shape[1]))
        u, c = pairs[:, 0], pairs[:, 1]
        each = model.net.pair_scores(user[u], query[u], keys[c], values[c], c).reshape(len(rows), -1)
    np.testing.assert_allclose(model.score(rows), each.numpy(), rtol=1e-4, atol=1e-5)
    # given ALS factors (the report's ALS, fitted on the same data) are the CF tokens, not refitted
    als = Factorisation("als", factors=8, iterations=3).fit(data)
    given = NeuralHybrid(max_epochs=1, batch_size=2048).fit(data, als=als)
    np.testing.assert_array_equal(given.p.numpy(), als.user_factors)
    np.testing.assert_array_equal(given.q.numpy(), als.item_factors)


def test_top_k_orders_best_first():
    scores = np.array([[0.1, 0.9, 0.5, -np.inf], [3.0, 2.0, 1.0, 0.0]])
    assert top_k(scores, 3).tolist() == [[1, 2, 0], [0, 1, 2]]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_top_k_batches_rank_like_a_full_sort(dtype):
    # 150,000 scores: the torch path
    scores = np.random.default_rng(0).standard_normal((300, 500)).astype(dtype)
    scores[0, :5], scores[1, :400], scores[2] = np.nan, -np.inf, np.round(scores[2])  # NaN last, -inf, ties
    for block in (scores, scores[:5, :30]):  # the torch path and the numpy one (a few rows, as when serving)
        top = top_k(block, 10)
        ranked = np.where(np.isnan(block), -np.inf, block)
        np.testing.assert_array_equal(
            np.take_along_axis(ranked, top, axis=1), -np.sort(-ranked, axis=1)[:, :10]
        )
        assert all(len(set(row)) == 10 for row in top)


def test_rating_prediction_hand_computed_and_better_than_the_mean(warehouse):
    from coursepilot.models.base import split_frame
    from coursepilot.models.ratings import RatingModels, rating_errors

    train = pd.DataFrame(
        {
            "learner_id": ["a", "a", "b", "b", "c"],
            "course_id": ["x", "y", "x", "y", "x"],
            "rating": [5.0, 3.0, 4.0, 2.0, 1.0],
        }
    )
    models = RatingModels((1.0, 5.0), regularisation=0.0, passes=1).fit(train)
    assert models.predict("global_mean", train[:1])[0] == pytest.approx(3.0)
    assert rating_errors(np.array([3.0, 5.0]), np.array([4.0, 5.0])) == {"mae": 0.5, "mse": 0.5}
    # a and b rate alike; c's prediction for y leans on them: mu_c + their centred ratings of y
    predicted = models.predict("user_knn_rating", pd.DataFrame({"learner_id": ["c"], "course_id": ["y"]}))[0]
    assert predicted == pytest.approx(1.0, abs=1e-9)  # clipped at the scale's floor: 1 + (-1) = 0 -> 1
    # unclipped, equation (9): d (mean 4) rates like a and b; r(d, y) = 4 + Σ sim (r - mean) / Σ |sim| = 4 +
    # (-1) = 3
    with_d = pd.concat([train, pd.DataFrame({"learner_id": ["d"], "course_id": ["x"], "rating": [4.0]})])
    models = RatingModels((1.0, 5.0), regularisation=0.0, passes=1).fit(with_d)
    predicted = models.predict("user_knn_rating", pd.DataFrame({"learner_id": ["d"], "course_id": ["y"]}))[0]
    assert predicted == pytest.approx(3.0, abs=1e-9)
    real = RatingModels((1.0, 5.0)).fit(split_frame(warehouse, ("train",)))
    test = split_frame(warehouse, ("test",)).dropna(subset=["rating"])
    mean_mae = rating_errors(test["rating"], real.predict("global_mean", test))["mae"]
    assert rating_errors(test["rating"], real.predict("biases", test))["mae"] < mean_mae


def test_a_level_grid_without_zero_still_finds_the_plain_alpha():
    """The plain equation (6) alpha is read from the level weight 0, which the grid always adds."""
    rng = np.random.default_rng(5)
    taken = rng.random((12, 9)) < 0.3
    data = TrainData(
        np.arange(12).astype(str).astype(object),
        np.arange(9).astype(str).astype(object),
        sparse.csr_matrix(taken.astype(float)),
        difficulty=np.tile([0, 1, 2], 3),
    )
    valid = {r: {int(np.flatnonzero(~taken[r])[0])} for r in range(12)}

    def grid(weights):
        hybrid = Hybrid(FixedScores(rng_scores[0]), FixedScores(rng_scores[1]))
        return tune(hybrid, data, valid, alphas=(0.0, 0.4, 1.0), level_weights=weights)

    rng_scores = rng.random((2, 12, 9))
    without, given = grid((0.5,)), grid((0.5, 0.0))
    assert without.grid["level_weight"].tolist() == [0.5, 0.0] * 3
    pd.testing.assert_frame_equal(without.grid, given.grid)
    assert without.alpha_without_level == given.alpha_without_level


def test_without_validation_learners_every_grid_point_scores_zero():
    """A carve that holds no learner (every learner has one training row) gives nothing to tune on: the
    grid and eq. 21's scorer say 0 rather than fail."""
    data = TrainData(
        np.array(["u", "v"], dtype=object),
        np.array(["a", "b", "c"], dtype=object),
        sparse.csr_matrix(np.array([[1.0, 0, 0], [0, 1.0, 0]])),
        difficulty=np.array([0, 1, 2]),
    )
    scores = np.random.default_rng(2).random((2, 2, 3))
    hybrid = Hybrid(FixedScores(scores[0]), FixedScores(scores[1]), 0.5, 0.2)
    tuning = tune(hybrid, data, {}, alphas=(0.0, 1.0), level_weights=(0.0, 0.5))
    assert tuning.grid["ndcg@10"].tolist() == [0.0] * 4
    assert (tuning.alpha, tuning.level_weight) == (0.0, 0.0)
    assert level_targets_scorer(hybrid.fit(data), data, {})(None) == 0.0
