"""EASE, item-kNN, the peer group and the fusion against hand-computed cases; the validation tuning."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from coursepilot.evaluation.protocol import evaluate
from coursepilot.models.base import TrainData, recommend_all
from coursepilot.models.explain import explain
from coursepilot.models.factors import Factorisation, aligned, warm_coverage
from coursepilot.models.fusion import Fusion, tune_fusion
from coursepilot.models.hybrid import Hybrid
from coursepilot.models.item_based import EASE, ItemKNN
from coursepilot.models.level import LevelMatch
from coursepilot.models.peer_group import PeerGroup
from coursepilot.models.simple import Popularity, Trending
from coursepilot.models.tuning import tune_params

from .fixed_scores import FixedScores


def _data(dense) -> TrainData:
    matrix = sparse.csr_matrix(np.asarray(dense, dtype=np.float32))
    n_learners, n_courses = matrix.shape
    return TrainData(
        np.array([f"L{i}" for i in range(n_learners)], dtype=object),
        np.array([f"C{j}" for j in range(n_courses)], dtype=object),
        matrix,
        difficulty=np.full(n_courses, -1),
    )


def test_ease_closed_form_on_a_4x4_matrix():
    x = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 1], [0, 0, 1, 1]], dtype=float)
    lam = 0.5
    p = np.linalg.inv(x.T @ x + lam * np.eye(4))
    b = np.eye(4) - p / np.diag(p)  # B_ij = -P_ij / P_jj off the diagonal, 0 on it
    model = EASE(lam).fit(_data(x * 3))  # confidences: EASE reads the binary matrix
    np.testing.assert_allclose(np.diag(model.weights), 0, atol=1e-7)
    np.testing.assert_allclose(model.weights, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score(np.arange(4)), x @ b, rtol=1e-5, atol=1e-6)
    # the closed form minimises ||X - XB||² + lam ||B||² under diag(B) = 0: its gradient vanishes off the
    # diagonal
    gradient = -2 * x.T @ (x - x @ b) + 2 * lam * b
    np.testing.assert_allclose(gradient * (1 - np.eye(4)), 0, atol=1e-9)


def test_ease_refuses_a_catalogue_too_large_for_the_dense_solve(monkeypatch):
    import coursepilot.models.item_based as item_based

    monkeypatch.setattr(item_based, "EASE_COURSES", 3)
    with pytest.raises(ValueError, match="item_knn"):
        EASE().fit(_data(np.eye(4)))


def test_the_fusion_leaves_out_what_cannot_be_fitted_on_everyone(monkeypatch):
    """Limits are checked on all the training rows, not on the tuning sample that would pass them."""
    import coursepilot.models.catalogue as catalogue
    import coursepilot.sampling as sampling

    rng = np.random.default_rng(0)
    data = _data(rng.random((40, 6)) < 0.5)
    monkeypatch.setattr(catalogue, "BPR_INTERACTIONS", data.matrix.nnz - 1)
    monkeypatch.setattr(
        catalogue, "tuning_population", lambda d, v: sampling.tuning_population(d, v, limit=10)
    )
    valid = {r: {int(rng.integers(6))} for r in range(40)}
    trained = catalogue.tune_models(data, valid, names=["bpr", "popularity"])
    assert "BPR's single-threaded fit" in trained.skipped["bpr"] and list(trained.fitted) == ["popularity"]


def test_models_tuned_side_by_side_choose_what_each_chooses_alone(monkeypatch):
    import coursepilot.models.catalogue as catalogue

    rng = np.random.default_rng(3)
    data = _data((rng.random((80, 15)) < 0.3) * rng.integers(1, 4, (80, 15)))
    valid = {r: {int(rng.integers(15))} for r in range(80)}
    names = ["bpr", "ease", "item_knn", "peer_group", "popularity"]
    together = catalogue.tune_models(data, valid, names=names)
    fits = catalogue.fit_models(data, together.params)  # two at a time
    monkeypatch.setattr(catalogue, "TUNING_THREADS", 1)
    alone = catalogue.tune_models(data, valid, names=names)
    assert list(together.params) == list(alone.params) == [m for m in catalogue.SPECS if m in names]
    assert together.params == alone.params and together.valid_ndcg() == alone.valid_ndcg()
    for name in names:
        np.testing.assert_array_equal(
            together.fitted[name].score(np.arange(80)), alone.fitted[name].score(np.arange(80))
        )
    for name in names:
        np.testing.assert_array_equal(
            fits[name].score(np.arange(80)), alone.fitted[name].score(np.arange(80))
        )


@pytest.mark.parametrize("similarity", ["cosine", "bm25"])
def test_item_knn_scores_are_the_brute_force_neighbour_sum(similarity):
    rng = np.random.default_rng(1)
    x = (rng.random((60, 12)) < 0.3) * rng.integers(1, 4, (60, 12))
    data = _data(x)
    model = ItemKNN(similarity, neighbours=4).fit(data)
    weights = model.weights.toarray()
    assert ((weights != 0).sum(axis=1) <= 4).all()  # each course keeps at most K neighbours
    if similarity == "cosine":
        unit = x / np.linalg.norm(x, axis=0)
        full = unit.T @ unit
        kept = weights != 0
        np.testing.assert_allclose(weights[kept], full[kept], rtol=1e-5)
        for j in range(12):  # the kept neighbours are the K most similar
            assert full[j, kept[j]].min() >= np.sort(full[j])[-4] - 1e-6
    rows = np.arange(60)
    expected = np.array([[sum(x[r, j] * weights[j, c] for j in range(12)) for c in range(12)] for r in rows])
    np.testing.assert_allclose(model.score(rows), expected, rtol=1e-5, atol=1e-6)


def test_item_based_evidence_is_the_taken_course_with_the_largest_part():
    data = _data([[1, 1, 0], [1, 0, 1], [0, 1, 1]])
    model = EASE(0.1).fit(data)
    row, course = 0, 2
    parts = data.matrix[row].toarray()[0] * (model.weights[:, course] != 0) * model.weights[:, course]
    assert model.evidence(row, course)[0] == int(np.argmax(parts))


def test_item_knn_evidence_reads_the_sparse_similarities_of_the_taken_courses():
    data = _data([[1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 1, 0]])
    model = ItemKNN("cosine", neighbours=3).fit(data)
    similarity = model.weights.toarray()
    for row in range(4):
        taken = data.matrix[row].indices
        for course in range(4):
            parts = data.matrix[row].toarray()[0][taken] * similarity[taken, course]
            if parts.sum() > 0:
                expected = (int(taken[np.argmax(parts)]), parts.max() / parts.sum())
                assert model.evidence(row, course) == pytest.approx(expected)


def test_peer_group_scores_the_share_of_the_cluster_that_took_each_course():
    # two clear groups: learners 0-19 take courses 0-3, learners 20-39 take courses 4-7
    x = np.zeros((40, 8))
    rng = np.random.default_rng(0)
    x[:20, :4] = rng.random((20, 4)) < 0.7
    x[20:, 4:] = rng.random((20, 4)) < 0.7
    x[np.arange(40), np.r_[np.zeros(20, int), np.full(20, 4)]] = 1
    model = PeerGroup(clusters=2).fit(_data(x))
    assert len(set(model.labels[:20])) == 1 and len(set(model.labels[20:])) == 1
    assert model.labels[0] != model.labels[20]
    np.testing.assert_allclose(model.score(np.array([0]))[0], x[:20].mean(axis=0), rtol=1e-6)
    assert model.sizes[model.labels[0]] == 20


def _signal_case(n=300, m=40, seed=0):
    """Learners whose validation course is the argmax of a 'signal' score; 'noise' is random."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n, m)) < 0.1).astype(float)
    signal = rng.random((n, m))
    signal[x > 0] = -1
    valid = {r: {int(np.argmax(signal[r]))} for r in range(n)}
    return _data(x), valid, signal, rng.random((n, m))


def test_fusion_picks_the_only_component_that_carries_signal():
    data, valid, signal, noise = _signal_case()
    components = {
        "noise": FixedScores(noise).fit(data),
        "signal": FixedScores(signal).fit(data),
        "popularity": Popularity().fit(data),
    }
    tuning = tune_fusion(components, data, valid)
    assert tuning.singles["signal"] == pytest.approx(1.0)
    assert max(tuning.singles["noise"], tuning.singles["popularity"]) < 0.5
    assert tuning.weights == {"signal": 1.0} and tuning.valid_ndcg == pytest.approx(1.0)


def test_fusion_is_never_worse_than_its_best_part_and_uses_two_when_both_help():
    data, valid, signal, noise = _signal_case(seed=3)
    # signal for even learners only
    half = np.where(np.arange(signal.shape[0])[:, None] % 2 == 0, signal, noise)
    other = np.where(np.arange(signal.shape[0])[:, None] % 2 == 1, signal, noise)  # for odd learners only
    components = {"even": FixedScores(half).fit(data), "odd": FixedScores(other).fit(data)}
    tuning = tune_fusion(components, data, valid)
    assert tuning.valid_ndcg >= max(tuning.singles.values())
    fusion = Fusion(components, tuning.weights).fit(data, fit_parts=False)
    assert evaluate(fusion, valid, ks=(10,))["ndcg@10"] == pytest.approx(tuning.valid_ndcg)


def test_models_ranked_together_score_each_shared_part_once_and_rank_as_alone():
    data, _, signal, noise = _signal_case(n=50)
    calls = []

    class Counted(FixedScores):
        def score(self, rows):
            calls.append(len(rows))
            return super().score(rows)

    signal_part, noise_part = Counted(signal).fit(data), Counted(noise).fit(data)
    models = {
        "signal": signal_part,
        "fusion": Fusion({"signal": signal_part, "noise": noise_part}, {"signal": 1.0, "noise": 0.5}).fit(
            data, fit_parts=False
        ),
        "eq6": Hybrid(signal_part, noise_part, alpha=0.7).fit(data, fit_parts=False),
    }
    rows = np.arange(data.shape[0])
    together = recommend_all(models, rows, 5, batch=20)  # three batches, scored on two threads
    assert sorted(calls) == [10, 10, 20, 20, 20, 20]  # each part once per batch of rows
    one_batch = recommend_all(models, rows, 5, batch=len(rows))
    for name, model in models.items():
        np.testing.assert_array_equal(together[name], model.recommend(rows, 5, batch=20))
        np.testing.assert_array_equal(together[name], one_batch[name])


def test_explanations_name_the_component_that_contributed_most():
    data, valid, signal, noise = _signal_case(n=50)
    fusion = Fusion(
        {"signal": FixedScores(signal).fit(data), "popularity": Popularity().fit(data)},
        {"signal": 1.0, "popularity": 0.25},
    ).fit(data, fit_parts=False)
    top = fusion.recommend(np.array([0]), 5)[0]
    reasons = explain(fusion, 0, top)
    parts = fusion.parts(np.array([0]))
    for course, reason in zip(top, reasons):
        expected = "signal" if parts["signal"][0, course] >= parts["popularity"][0, course] else "popularity"
        assert reason.component == expected


def test_coordinate_ascent_finds_the_grid_optimum_of_a_separable_score(monkeypatch):
    data = _data(np.eye(6))
    seen = []

    class Probe(Popularity):
        def __init__(self, a=0, b=0):
            self.a, self.b = a, b

        def fit(self, d):
            seen.append((self.a, self.b))
            return super().fit(d)

    import coursepilot.models.tuning as tuning

    # the search is under test here, not a model: validation scores a separable bowl with its peak at (2, 30)
    monkeypatch.setattr(
        tuning, "evaluate", lambda model, valid, ks: {"ndcg@10": -((model.a - 2) ** 2) - (model.b - 30) ** 2}
    )
    result = tune_params(Probe, {"a": (0, 1, 2, 3), "b": (10, 20, 30)}, data, {})
    assert result.params == {"a": 2, "b": 30}
    # each point fitted once: a's line, b's line, a's line again
    assert len(seen) == len(set(seen)) == 4 + 2 + 3
    assert (result.model.a, result.model.b) == (2, 30)
    # b read only when scoring: one fit per value of a, every b a rescoring of it
    seen.clear()
    Probe.score_params = ("b",)
    result = tune_params(Probe, {"a": (0, 1, 2, 3), "b": (10, 20, 30)}, data, {})
    assert result.params == {"a": 2, "b": 30} and (result.model.a, result.model.b) == (2, 30)
    assert sorted(seen) == [(0, 10), (1, 10), (2, 10), (3, 10)]


def test_a_rescored_item_model_equals_one_fitted_with_the_value():
    rng = np.random.default_rng(0)
    data = _data(rng.random((8, 5)) < 0.5)
    data.times = data.matrix.copy()
    data.times.data = rng.random(data.times.nnz).astype(np.float32) * 1e6
    fitted = EASE(10.0, recency=0.0).fit(data)
    np.testing.assert_allclose(
        fitted.rescored(recency=2.0).score(np.arange(8)),
        EASE(10.0, recency=2.0).fit(data).score(np.arange(8)),
        rtol=1e-5,
        atol=1e-6,
    )
    assert fitted.recency == 0.0  # the fitted model is untouched
    with pytest.raises(ValueError, match="refit"):
        fitted.rescored(regularization=1.0)


def test_trending_weighs_each_interaction_by_its_age_in_half_lives():
    data = _data([[1, 1, 0], [0, 1, 1], [1, 0, 0]])
    day = 86_400.0
    rows, cols, days = [0, 0, 1, 1, 2], [0, 1, 1, 2, 0], [0, 90, 100, 100, 10]  # in the matrix's pattern
    data.times = sparse.csr_matrix((1.7e9 + np.array(days) * day, (rows, cols)), shape=(3, 3))
    model = Trending(half_life=0.1).fit(data)  # half-life: 10% of the 100-day span
    ages = {0: [100, 90], 1: [10, 0], 2: [0]}  # days before the latest interaction, per course
    expected = [np.log1p(sum(2.0 ** (-a / 10) for a in ages[c])) for c in range(3)]
    np.testing.assert_allclose(model.counts, expected)
    scores = model.score(np.array([0]))[0]
    assert scores[2] > scores[0]  # taken once, lately, beats taken twice, long ago
    with pytest.raises(ValueError, match="interaction times"):
        Trending().fit(_data(np.eye(3)))


@pytest.mark.parametrize("signal", ["profile", "popularity"])
def test_cold_start_blend_follows_the_signal_on_validation(signal):
    import duckdb

    from coursepilot.models.cold_start import BLENDS, tune_blend

    rng = np.random.default_rng(5)
    n, m = 200, 30
    course_vectors = np.eye(m)
    jobs = rng.integers(0, m, n)  # each learner's profile points at one course
    x = np.zeros((n, m))
    x[:, :3] = rng.random((n, 3)) < 0.5  # popular courses 0-2 in the fitted rows
    data = _data(x)
    data.course_vectors = course_vectors
    if signal == "profile":
        valid = {r: {int(jobs[r])} for r in range(n)}
    else:
        valid = {r: {int(rng.integers(0, 3))} for r in range(n)}
    con = duckdb.connect()
    con.execute("CREATE TABLE learners (learner_id VARCHAR, job VARCHAR)")
    con.executemany("INSERT INTO learners VALUES (?, ?)", [[f"L{r}", f"job {jobs[r]}"] for r in range(n)])

    # the profile's vector: the course its job names (profile signal), or a random direction (no profile
    # signal)
    table = course_vectors if signal == "profile" else rng.standard_normal((m, m))

    def embed(texts):
        return table[[int(t.split()[1]) for t in texts]]

    weight, scores = tune_blend(con, data, valid, embed)
    assert set(scores) == set(BLENDS) and scores[weight] == max(scores.values())
    assert scores[weight] >= max(scores[0.0], scores[1.0])  # never below profile alone or popularity alone
    alone, other = (scores[0.0], scores[1.0]) if signal == "profile" else (scores[1.0], scores[0.0])
    # the side with the signal counts
    assert alone > other + 0.1 and weight != (1.0 if signal == "profile" else 0.0)


def test_recency_weighs_a_learners_latest_courses_most():
    from coursepilot.models.item_based import recency_weights

    times = sparse.csr_matrix(
        (np.array([5.0, 9.0, 1.0, 7.0, 3.0]), ([0, 0, 0, 1, 1], [0, 1, 2, 0, 3])), shape=(2, 4)
    )
    weights = recency_weights(times, half_life=1.0).toarray()
    np.testing.assert_allclose(weights, [[0.5, 1.0, 0.25, 0.0], [1.0, 0.0, 0.0, 0.5]])
    data = _data([[1, 1, 1, 0], [1, 0, 0, 1]])
    data.times = times
    plain, recent = EASE(1.0).fit(data), EASE(1.0, recency=1.0).fit(data)
    np.testing.assert_allclose(recent.score(np.arange(2)), weights @ plain.weights, rtol=1e-5, atol=1e-6)


def test_intensity_match_pairs_adaptive_learners_with_intensive_courses():
    """Equation (3)'s labels matched: p_a * p_i + (1 - p_a)(1 - p_i); unknown on either side scores 0.5."""
    data = _data(np.zeros((3, 3)))
    data.p_adaptive = np.array([0.9, 0.2, np.nan])
    data.p_intensive = np.array([0.8, 0.1, np.nan])
    data.difficulty = np.array([2, 0, -1])
    intensity = LevelMatch("intensity").fit(data).score(np.arange(3))
    np.testing.assert_allclose(
        intensity,
        [
            [0.9 * 0.8 + 0.1 * 0.2, 0.9 * 0.1 + 0.1 * 0.9, 0.5],
            [0.2 * 0.8 + 0.8 * 0.2, 0.2 * 0.1 + 0.8 * 0.9, 0.5],
            [0.5, 0.5, 0.5],
        ],
    )
    # adaptive -> intensive, non-adaptive -> accessible
    assert intensity[0].argmax() == 0 and intensity[1].argmax() == 1
    difficulty = LevelMatch("difficulty").fit(data).score(np.arange(3))
    np.testing.assert_allclose(LevelMatch("both").fit(data).score(np.arange(3)), (intensity + difficulty) / 2)
    with pytest.raises(ValueError, match="signal"):
        LevelMatch("mood")


def test_als_warm_start_matches_factors_by_id_and_converges(data):
    """A fit from earlier factors keeps each known learner's and course's row (new ids start small), and a few
    iterations from a converged fit stay at its quality."""
    start = {
        "learner_ids": np.array(["b", "a"]),
        "user_factors": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32),
    }
    rows = aligned(
        start["learner_ids"], start["user_factors"], np.array(["a", "new", "b"]), np.random.default_rng(0)
    )
    np.testing.assert_array_equal(rows[[0, 2]], [[3.0, 4.0], [1.0, 2.0]])
    assert (0 <= rows[1]).all() and (rows[1] < 0.01).all()

    cold = Factorisation("als", factors=8, iterations=15).fit(data)
    state = cold.warm_state()
    # ids in another order: the warm fit must follow the ids, not the positions
    order = np.random.default_rng(1).permutation(data.shape[0])
    state = {
        **state,
        "learner_ids": state["learner_ids"][order],
        "user_factors": state["user_factors"][order],
    }
    one = Factorisation("als", factors=8).fit(data, start=state, iterations=1)
    fresh = Factorisation("als", factors=8).fit(data, iterations=1)

    def gap(model):
        return np.abs(model.score(np.arange(50)) - cold.score(np.arange(50))).mean()

    assert gap(one) < 0.2 * gap(fresh)
    assert warm_coverage(state, data) == 1.0
    renamed = {**state, "learner_ids": np.char.add("x", state["learner_ids"].astype(str))}
    assert warm_coverage(renamed, data) == 0.0  # reformatted ids: nothing matches, the nightly starts cold
    assert "match" in Factorisation("als", factors=8).start_fits(renamed, data)
    assert "factor count" in Factorisation("als", factors=16).start_fits(state, data)
    assert Factorisation("als", factors=8).start_fits(state, data) is None


def test_bpr_warm_start_keeps_its_bias_column_and_the_nightly_builds_from_the_kept_factors(
    data, test_sets, tmp_path
):
    """BPR starts from earlier factors as ALS does; a new learner's bias column starts at 1 as implicit starts
    it. The fusion's factor fits are kept in the model store and ``build`` starts the next fit from them."""
    from coursepilot.home import ProjectHome
    from coursepilot.models.catalogue import build
    from coursepilot.models.factors import WARM_ITERATIONS
    from coursepilot.models.store import ModelStore
    from coursepilot.models.warm import FusionStarts

    cold = Factorisation("bpr", factors=8, iterations=60, learning_rate=0.05).fit(data)
    state = cold.warm_state()
    assert state["user_factors"].shape[1] == 9  # eight factors and the bias column
    rows = aligned(
        state["learner_ids"][:2], state["user_factors"][:2], np.array(["new"]), np.random.default_rng(0), 1.0
    )
    assert rows[0, -1] == 1.0 and (rows[0, :-1] < 0.01).all()

    store = ModelStore(ProjectHome.resolve(tmp_path).ensure())
    assert FusionStarts.load(store).full == {}
    FusionStarts.save(store, {"bpr": cold}, {"bpr": cold, "ease": object()}, data)
    kept = FusionStarts.load(store)
    assert list(kept.full) == ["bpr"]  # factor models only
    np.testing.assert_array_equal(kept.full["bpr"]["item_factors"], cold.item_factors)

    params = {"factors": 8, "learning_rate": 0.05}
    warm = build("bpr", params, kept.full["bpr"], data)
    assert not warm.started_warm and not build("bpr", params).fit(data).started_warm
    assert not build("bpr", {**params, "factors": 4}, kept.full["bpr"], data).fit(data).started_warm
    warm.fit(data)
    assert warm.started_warm
    epochs = WARM_ITERATIONS["bpr"]
    fresh = Factorisation("bpr", factors=8, iterations=epochs, learning_rate=0.05).fit(data)

    ndcg = {
        m: evaluate(model, test_sets, ks=(10,))["ndcg@10"]
        for m, model in (("cold", cold), ("warm", warm), ("fresh", fresh))
    }
    # the nightly's epochs from the kept factors keep the cold fit's quality and beat as many from random ones
    assert ndcg["warm"] >= ndcg["cold"] - 0.005 and ndcg["warm"] > ndcg["fresh"]
    # the next night's BPR starts from the cold fit again (its epochs must not add up); ALS from its last fit
    FusionStarts.save(store, {}, {"bpr": warm}, data)
    np.testing.assert_array_equal(FusionStarts.load(store).full["bpr"]["item_factors"], cold.item_factors)
    assert not warm.fit(data).started_warm  # a later fit starts cold unless told otherwise
    als = Factorisation("als", factors=8).fit(
        data, start=Factorisation("als", factors=8).fit(data).warm_state()
    )
    assert als.started_warm
    np.testing.assert_array_equal(als.next_start()["item_factors"], als.item_factors)


def _untrained_pairs(data, n: int, skip: set) -> list[tuple[int, int]]:
    """``n`` untrained (row, column) pairs of ``data``, each of a learner outside ``skip``."""
    matrix = data.matrix.tocsr()
    out = []
    for r in range(matrix.shape[0]):
        if r in skip:
            continue
        free = np.setdiff1d(
            np.arange(matrix.shape[1]), matrix.indices[matrix.indptr[r] : matrix.indptr[r + 1]]
        )
        if len(free):
            out.append((r, int(free[0])))
        if len(out) == n:
            break
    return out


def test_the_carve_fits_start_warm_only_when_no_validation_row_trained_the_last_carve_fit(data):
    """A validation row that was a training row of the last carve fit (no timestamps, a tie, another carve
    rule) would let the fit the gate scores see it: then the carve fits start cold."""
    from coursepilot.models.warm import FusionStarts, pair_keys, trained_pairs, validation_pairs

    matrix = data.matrix.tocsr()
    rows = np.flatnonzero(np.diff(matrix.indptr) >= 2)[:20]
    valid = {int(r): {int(matrix.indices[matrix.indptr[r]])} for r in rows}
    held = data.with_matrix(matrix.copy(), data.times)
    for r in rows:  # the carve holds each one's first course out of training
        held.matrix[r, matrix.indices[matrix.indptr[r]]] = 0
    held.matrix.eliminate_zeros()
    starts = FusionStarts({"als": {"item_factors": np.zeros((1, 1))}}, {}, trained_pairs(held))
    assert starts.for_carve(data, valid) == (starts.carve, valid, "")
    assert len(validation_pairs(data, valid)) == 20
    leaked = FusionStarts(starts.carve, {}, trained_pairs(data))  # last night trained on those rows
    said = "20 of tonight's validation rows trained the last carve fit"
    assert leaked.for_carve(data, valid) == ({}, valid, said)
    assert FusionStarts().for_carve(data, valid) == ({}, valid, "no earlier fit on the carve")
    # one of them (under 1% of a larger validation set): left out of validation, the fits start warm
    more = {**valid, **{int(r): {int(c)} for r, c in _untrained_pairs(held, 200, set(valid))}}
    one = next(iter(valid))
    trained_one = FusionStarts(
        starts.carve, {}, pair_keys(data.learner_ids[[one]], data.course_ids[list(valid[one])])
    )
    begun, scored, note = trained_one.for_carve(data, more)
    assert (
        begun == starts.carve
        and note == "1 of tonight's validation rows trained the last carve fit: left out of validation"
    )
    assert scored == {r: cols for r, cols in more.items() if r != one}


def test_the_first_failed_search_cancels_the_queued_ones():
    from concurrent.futures import Future, ThreadPoolExecutor
    from threading import Event

    from coursepilot.models.catalogue import in_order

    failed, release, ran = Future(), Event(), []
    failed.set_exception(ValueError("no signal"))
    pool = ThreadPoolExecutor(1)
    busy = pool.submit(release.wait)  # holds the only worker: the next one stays queued
    queued = pool.submit(ran.append, "queued")
    with pytest.raises(ValueError, match="no signal"):
        in_order(pool, {"failed": failed, "busy": busy, "queued": queued})
    release.set()
    assert queued.cancelled() and busy.result() and ran == []
