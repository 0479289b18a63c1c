"""Learning state (equations 3, 6, 20, 21) by hand, dynamic clusters, peer ranking and significance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.preprocessing import normalize

from coursepilot.evaluation.metrics import ranking_metrics
from coursepilot.evaluation.significance import bootstrap_ci, paired_ttest
from coursepilot.models.base import TrainData
from coursepilot.models.level import LevelMatch
from coursepilot.peers.clusters import ClusterConfig, ClusterSpace, dbscan, kmeans, latest_by_window
from coursepilot.peers.ranking import (
    TERMS,
    PeerConfig,
    active_peers,
    cf_peers,
    cluster_random_peers,
    evaluate_peers,
    hybrid_peers,
    peer_reasons,
    ranked_matrix,
    relevant_counts,
)
from coursepilot.peers.state import (
    StateWeights,
    adjust_difficulty,
    difficulty_path,
    last_targets,
    learner_state,
    tune_steering,
)
from coursepilot.peers.tracking import Windows, cluster_space, track_clusters
from coursepilot.peers.tuning import (
    CourseSide,
    PeerValidation,
    peer_validation,
    tune_weights,
    tuning_sample,
    weight_grid,
)
from coursepilot.profiles import CodedVectors, LearnerProfiles, normalise_rows

T0 = pd.Timestamp("2025-01-06")


def frame(rows):
    return pd.DataFrame(
        rows, columns=["learner_id", "course_id", "watch_pct", "rating", "ts", "difficulty", "duration_min"]
    )


def test_state_equations_by_hand():
    weights = StateWeights(alpha=0.2, beta=0.5, gamma=0.3, eta1=0.6, eta2=0.4, eta3=0.0, delta=0.5, theta=0.5)
    data = frame(
        [
            ("u", "a", 100.0, 5.0, T0, "beginner", 60.0),
            ("u", "b", 50.0, 3.0, T0 + pd.Timedelta(days=1), "advanced", 60.0),
            ("u", "c", 100.0, 1.0, T0 + pd.Timedelta(days=8), "intermediate", 30.0),
            ("v", "a", 20.0, 1.0, T0 + pd.Timedelta(days=2), "beginner", 60.0),
        ]
    )
    state = learner_state(data, (1.0, 5.0), weights).set_index(["learner_id", "week"])
    week0, week1 = state.loc[("u", 0)], state.loc[("u", 1)]
    assert week0["W"] == pytest.approx(0.75) and week0["R"] == pytest.approx((1.0 + 0.5) / 2)
    # eq. 3: D = (1/|I|) sum d_i W_ui, cumulative: week 0 (1*1 + 3*0.5)/2, week 1 adds 2*1
    assert week0["D"] == pytest.approx(1.25) and week1["D"] == pytest.approx((1 + 1.5 + 2) / 3)
    # engagement minutes 90, 30, 12 min-max scaled over all learner-weeks
    assert week0["E"] == pytest.approx(1.0) and state.loc[("v", 0), "E"] == pytest.approx(0.0)
    assert week0["T"] == pytest.approx(0.2 * 0.75 + 0.5 * 0.75 + 0.3 * 1.0)  # eq. 6
    assert week0["P"] == pytest.approx(0.6 * 0.75 + 0.4 * 0.75)  # eq. 20
    # eq. 21 from the first week's mean level (beginner 0, advanced 2 -> 1.0), clipped to [0, 2]
    assert week0["target_difficulty"] == pytest.approx(1.0 + 0.5 * (0.75 - 0.5))
    assert week1["target_difficulty"] == pytest.approx(week0["target_difficulty"] + 0.5 * (week1["P"] - 0.5))
    assert adjust_difficulty(1.0, 0.9, 0.5, 0.6) > 1.0 > adjust_difficulty(1.0, 0.3, 0.5, 0.6)


def test_missing_signals_are_left_out_and_weights_renormalised():
    data = frame([("u", "a", np.nan, np.nan, T0, "beginner", 60.0)]).drop(columns=["watch_pct", "rating"])
    state = learner_state(data, None)
    assert "W" not in state and "R" not in state
    assert state.loc[0, "T"] == pytest.approx(state.loc[0, "E"])  # only E remains, with weight 1


def _blocks(n_per: int = 30, rng=np.random.default_rng(0)):
    """Two groups of learners: basic courses 0-9 and advanced courses 10-19."""
    rows, cols = [], []
    for u in range(2 * n_per):
        base = 0 if u < n_per else 10
        for c in rng.choice(10, 4, replace=False):
            rows.append(u)
            cols.append(base + c)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(2 * n_per, 20))


def test_tracked_clusters_follow_a_learner_who_moves_to_advanced_courses():
    config = ClusterConfig(k=2, svd_dims=4, profile_dims=2, silhouette_sample=100)
    before, mover = _blocks().tocoo(), 0  # the mover starts with the basic group
    moves = np.array([10, 11, 12, 13, 14, 15])  # then takes six advanced courses, heavily, in week 1
    level = np.where(np.arange(60) < 30, 1.0, 3.0)
    windows = Windows(
        (60, 20),
        np.array([0, 1]),
        np.r_[np.zeros(before.nnz, int), np.ones(len(moves), int)],
        np.r_[before.row, np.full(len(moves), mover)],
        np.r_[before.col, moves],
        np.r_[np.ones(before.nnz), np.full(len(moves), 3.0)].astype(np.float32),
        {"D": np.c_[level, np.where(np.arange(60) == mover, 3.0, level)], "T": np.full((60, 2), 0.5)},
    )
    profiles = LearnerProfiles(
        np.arange(60), {p: np.ones((60, 3), np.float32) for p in ("desc", "job", "soft", "theme")}
    )
    tracked = track_clusters(windows, cluster_space(windows, profiles, config), profiles.ids, config)
    at = tracked.clusters.pivot(index="learner_id", columns="week", values="cluster")
    assert at.loc[mover, 0] == at.loc[1, 0] != at.loc[45, 0]  # with the basic group first
    assert at.loc[mover, 1] == at.loc[45, 1] != at.loc[1, 1]  # then with the advanced group
    assert tracked.moved == {1: 1} and (at[0] != at[1]).sum() == 1  # nobody else moved
    assert (
        tracked.clusters["dbscan_cluster"].notna().tolist() == [False] * 60 + [True] * 60
    )  # the last window
    assert np.array_equal(tracked.labels, at[1].to_numpy()) and tracked.k == 2


def _profiles(n, rng=np.random.default_rng(1)):
    return LearnerProfiles(
        np.arange(n),
        {
            p: normalise_rows(rng.normal(size=(n, 8)).astype(np.float32))
            for p in ("desc", "job", "soft", "theme")
        },
    )


def test_peers_never_include_the_learner_and_noise_points_get_peers():
    matrix = _blocks()
    config = ClusterConfig(k=2, svd_dims=4, profile_dims=2, dbscan_min_samples=5)
    features = (
        ClusterSpace(config).fit(matrix, _profiles(60)).transform(matrix, np.full(60, 2.0), np.full(60, 0.5))
    )
    features[7] += 50.0  # an outlier DBSCAN calls noise
    noise = dbscan(features, config)
    assert noise[7] == -1
    labels, centroids, _, _ = kmeans(features, config)
    jobs = np.array(["analyst"] * 60, dtype=object)
    peers = hybrid_peers(matrix, _profiles(60), np.full(60, 2.0), labels, centroids, jobs, PeerConfig(k=5))
    assert not (peers["learner"] == peers["peer"]).any()
    assert (peers.groupby("learner").size() == 5).all() and peers["learner"].nunique() == 60
    assert 7 in set(peers["learner"])
    assert (
        peers["reason"]
        .str.match(r"\d+ courses? in common|same job \(analyst\)|similar interests|similar level")
        .all()
    )
    for ranked in (cf_peers(matrix, 5), cluster_random_peers(labels, 5), active_peers(matrix, 5)):
        assert ranked.shape == (60, 5) and all(row not in list(p) for row, p in enumerate(ranked))
    assert all(
        set(p[p >= 0]) <= set(np.flatnonzero(labels == labels[row]))
        for row, p in enumerate(cluster_random_peers(labels, 5))
    )
    activity = np.diff(matrix.indptr)
    most = active_peers(matrix, 5)
    assert all(
        (np.diff(activity[p]) <= 0).all() and activity[p].min() >= np.sort(activity[np.arange(60) != row])[-5]
        for row, p in enumerate(most)
    )
    rows = np.flatnonzero(labels == np.bincount(labels).argmax())[:3]
    for ranked in (cluster_random_peers(labels, 5, rows=rows), active_peers(matrix, 5, rows=rows)):
        assert (ranked[rows] >= 0).all() and (np.delete(ranked, rows, axis=0) == -1).all()
    np.testing.assert_array_equal(active_peers(matrix, 5, rows=rows)[rows], most[rows])


def test_hybrid_peer_scores_follow_the_weighted_terms_and_are_the_best_candidates():
    matrix = _blocks().tolil()
    matrix[50:53, 9] = 1  # learners 50-52 took a fifth course: the five most active are they, 0 and 1
    matrix, profiles = matrix.tocsr(), _profiles(60)
    proficiency = np.random.default_rng(3).uniform(1, 3, 60)
    proficiency[5] = np.nan  # unknown: the middle level
    labels, centroids = np.repeat([0, 1], 30), np.array([[0.0], [1.0]])
    # candidates: own cluster, the five most active
    config = PeerConfig(
        k=4,
        interaction_weight=0.5,
        profile_weight=0.3,
        level_weight=0.2,
        activity_weight=0.1,
        neighbour_clusters=0,
        active_candidates=5,
    )
    peers = hybrid_peers(
        matrix, profiles, proficiency, labels, centroids, np.full(60, None, dtype=object), config
    )
    unit, level = normalize(matrix), np.nan_to_num(proficiency, nan=2.0)
    activity = np.log1p(np.diff(matrix.indptr)) / np.log1p(5)
    for u in (0, 5, 40):
        pool = np.union1d(np.flatnonzero(labels == labels[u]), [50, 51, 52, 0, 1])
        pool = pool[pool != u]
        expected = (
            0.5 * (unit[u] @ unit[pool].T).toarray()[0]
            + 0.3 * profiles.similarity(u, pool)
            + 0.2 * (1 - np.abs(level[u] - level[pool]) / 2)
            + 0.1 * activity[pool]
        )
        got = peers[peers["learner"] == u]
        np.testing.assert_allclose(got["score"], np.sort(expected)[::-1][:4], atol=1e-5)
        assert got["peer"].tolist() == pool[np.argsort(-expected)[:4]].tolist()


def test_activity_alone_ranks_as_the_active_peers_baseline():
    counts = np.random.default_rng(7).permutation(40) + 1  # distinct, so the order has no ties
    matrix = sparse.csr_matrix(
        (
            np.ones(counts.sum()),
            (np.repeat(np.arange(40), counts), np.concatenate([np.arange(c) for c in counts])),
        ),
        shape=(40, 40),
    )
    labels, centroids = np.arange(40) % 4, np.arange(4.0)[:, None]
    # the k + 1 most active join every pool
    config = PeerConfig(
        k=5,
        interaction_weight=0,
        profile_weight=0,
        level_weight=0,
        activity_weight=1,
        neighbour_clusters=0,
        active_candidates=0,
    )
    jobs = np.full(40, None, dtype=object)
    peers = hybrid_peers(matrix, _profiles(40), np.full(40, 2.0), labels, centroids, jobs, config)
    np.testing.assert_array_equal(ranked_matrix(peers, 5), active_peers(matrix, 5))
    assert peers["reason"].str.fullmatch(r"active learner \(\d+ courses\)").all()


def test_peer_evaluation_matches_the_per_learner_definition():
    test = sparse.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]))
    # learner 3 shares nothing, learner 4 has no test course
    assert relevant_counts(test).tolist() == [1, 2, 1, 0, 0]
    ranked = np.array([[3, 1], [2, -1], [0, 1], [0, 1], [0, 1]])
    scores, per, evaluated = evaluate_peers(test, {"x": ranked}, ks=(1, 2))
    relevant = {0: {1}, 1: {0, 2}, 2: {1}}
    expected = {
        u: [ranking_metrics([p for p in ranked[u] if p >= 0], relevant[u], k) for k in (1, 2)]
        for u in relevant
    }
    assert evaluated == 3
    assert scores["x"]["ndcg@2"] == pytest.approx(np.mean([expected[u][1]["ndcg"] for u in relevant]))
    assert scores["x"]["recall@2"] == pytest.approx(np.mean([expected[u][1]["recall"] for u in relevant]))
    assert scores["x"]["precision@1"] == pytest.approx(
        np.mean([expected[u][0]["precision"] for u in relevant])
    )
    np.testing.assert_allclose(per["x"], [expected[u][1]["ndcg"] for u in relevant])


def test_paired_ttest():
    a, b = np.array([0.5, 0.6, 0.7, 0.9]), np.array([0.4, 0.6, 0.5, 0.6])
    result = paired_ttest(a, b)
    diff = a - b
    assert result["mean_diff"] == pytest.approx(diff.mean()) and result["df"] == 3
    assert result["cohens_d"] == pytest.approx(diff.mean() / diff.std(ddof=1))
    assert result["ci_low"] < result["mean_diff"] < result["ci_high"] and 0 < result["p"] < 1
    with pytest.raises(ValueError):
        paired_ttest([1.0], [0.0])


def test_cluster_space_fitted_on_a_sample_places_every_learner():
    matrix = sparse.random(500, 40, density=0.1, format="csr", random_state=3)
    config = ClusterConfig(svd_dims=6, profile_dims=4, fit_sample=100)
    space = ClusterSpace(config).fit(matrix, _profiles(500))
    features = space.transform(matrix, np.full(500, 2.0), np.full(500, 0.5))
    assert features.shape == (500, 6 + 4 + 2) and np.isfinite(features).all()
    np.testing.assert_allclose(np.linalg.norm(features[:, 6:10], axis=1), 1.0, rtol=1e-5)


def test_eq21_for_many_learners_equals_stepping_each_learner():
    rng = np.random.default_rng(4)
    rows = [
        (
            f"u{u}",
            f"c{i}",
            rng.uniform(0, 100),
            rng.uniform(1, 5),
            T0 + pd.Timedelta(days=int(rng.integers(0, 40))),
            rng.choice(["beginner", "intermediate", "advanced"]),
            30.0,
        )
        for u in range(25)
        for i in range(int(rng.integers(1, 9)))
    ]
    weights = StateWeights(delta=0.8, theta=0.5)
    state = learner_state(frame(rows), (1.0, 5.0), weights)
    data = frame(rows).assign(week=lambda f: (f["ts"] - f["ts"].min().normalize()).dt.days // 7)
    for learner, windows in state.groupby("learner_id"):
        windows = windows.sort_values("week")
        first = data[(data["learner_id"] == learner) & (data["week"] == windows["week"].iloc[0])]
        d = first["difficulty"].map({"beginner": 0, "intermediate": 1, "advanced": 2}).mean()
        for p, target in zip(windows["P"], windows["target_difficulty"]):
            d = float(np.clip(adjust_difficulty(d, p, 0.8, 0.5), 0, 2))
            assert target == pytest.approx(d)


def test_latest_state_per_window_is_the_last_row_at_or_before_it():
    rng = np.random.default_rng(5)
    ids = np.array([f"u{i}" for i in range(40)], dtype=object)
    state = pd.DataFrame(
        [(u, w, rng.normal(), rng.normal()) for u in ids[:35] for w in range(6) if rng.random() < 0.5],
        columns=["learner_id", "week", "D", "T"],
    )
    windows = np.sort(state["week"].unique())
    latest = latest_by_window(state, ids, windows)
    for i, window in enumerate(windows):
        upto = (
            state[state["week"] <= window]
            .sort_values("week")
            .groupby("learner_id")
            .tail(1)
            .set_index("learner_id")
        )
        for name in ("D", "T"):
            np.testing.assert_array_equal(latest[name][:, i], upto[name].reindex(ids).to_numpy(float))


def test_k_chosen_on_a_sample_then_fitted_on_everyone():
    rng = np.random.default_rng(6)
    centres = rng.normal(size=(3, 5)) * 10
    features = np.vstack([c + rng.normal(size=(400, 5)) for c in centres]).astype(np.float32)
    labels, centroids, k, scores = kmeans(
        features, ClusterConfig(k_range=(2, 6), fit_sample=300, silhouette_sample=200)
    )
    assert k == 3 and set(scores) == {2, 3, 4, 5, 6} and max(scores, key=scores.get) == 3
    assert len(labels) == 1200 and centroids.shape == (3, 5)
    assert all(len(set(labels[i * 400 : (i + 1) * 400])) == 1 for i in range(3))  # every blob is one cluster


def test_validation_carve_holds_out_the_latest_rows_and_rebuilds_profiles_and_levels_without_them():
    days = pd.Timedelta(days=1)
    train = frame(
        [
            *[("a", f"c{i}", 100.0, 5.0, T0 + i * days, "beginner", 30.0) for i in range(4)],
            ("a", "c4", 100.0, 5.0, T0 + 9 * days, "advanced", 30.0),  # a's latest fifth: held out
            ("b", "c0", 80.0, 4.0, T0, "beginner", 30.0),
            ("b", "c1", 80.0, 4.0, T0 + days, "beginner", 30.0),
            ("c", "c5", 50.0, 3.0, T0, "advanced", 30.0),
            ("c", "c0", 50.0, 3.0, T0 + days, "beginner", 30.0),
            ("c", "c4", 50.0, 3.0, T0 + 3 * days, "advanced", 30.0),
        ]
    )
    ids, course_ids = (
        np.array(["a", "b", "c"], dtype=object),
        np.array([f"c{i}" for i in range(6)], dtype=object),
    )
    stored = LearnerProfiles(
        ids, {p: np.eye(3, 6, dtype=np.float32) for p in ("desc", "job", "soft", "theme")}
    )
    courses = CourseSide(
        np.eye(6, dtype=np.float32), CodedVectors(np.zeros(6, dtype=int), np.full((1, 6), 6**-0.5))
    )
    validation = peer_validation(train, stored, course_ids, courses, (1.0, 5.0), share=0.2)
    assert sorted(zip(*validation.held.nonzero())) == [(0, 4), (2, 4)]  # b has too few rows to give one
    assert (
        validation.fit.nnz + validation.held.nnz == len(train)
        and validation.fit.multiply(validation.held).nnz == 0
    )
    desc = validation.profiles.parts["desc"][np.arange(3)]
    # no held course
    assert (desc[0, :4] > 0).all() and desc[0, 4] == 0 and desc[2, 4] == 0 and desc[2, [0, 5]].all()
    # what does not come from interactions stays
    assert validation.profiles.parts["job"] is stored.parts["job"]
    # eq. 3 (mean of level x watch) on the kept rows: with the held advanced c4, a would be 1.4 and c 7/6
    np.testing.assert_allclose(validation.proficiency, [1.0, 0.8, (3 * 0.5 + 1 * 0.5) / 2])


def _validation(term: str | None, n: int = 48, seed: int = 0) -> PeerValidation:
    """Three interleaved groups whose validation future is a course of their own; only ``term`` tells them
    apart (None: every term carries some signal). ``activity``: group 0 is heavy, holds every group's course,
    and is therefore a relevant peer of everyone."""
    rng = np.random.default_rng(seed)
    group = np.arange(n) % 3
    counts = np.where(group == 0, 8, rng.integers(1, 3, n)) if term == "activity" else rng.integers(1, 5, n)
    taken = [rng.choice(30, c, replace=False) for c in counts]
    if term in ("interaction", None):
        taken = [np.r_[30 + g, 10 * g + rng.choice(10, 2, replace=False)] for g in group]
        if term is None:
            taken = [t if rng.random() < 0.7 else rng.choice(33, 3, replace=False) for t in taken]
    fit = sparse.csr_matrix(
        (
            np.ones(sum(map(len, taken))),
            (np.repeat(np.arange(n), list(map(len, taken))), np.concatenate(taken)),
        ),
        shape=(n, 50),
    )
    future = [[40, 41, 42] if term == "activity" and g == 0 else [40 + g] for g in group]
    held = sparse.csr_matrix(
        (
            np.ones(sum(map(len, future))),
            (np.repeat(np.arange(n), list(map(len, future))), np.concatenate(future)),
        ),
        shape=(n, 50),
    )
    signal = {"profile": 3.0, None: 0.7}.get(term, 0.0)
    vectors = np.eye(8, dtype=np.float32)[group] * signal + rng.normal(size=(n, 8)).astype(np.float32) * 0.3
    profiles = LearnerProfiles(
        np.arange(n), {p: normalise_rows(vectors) for p in ("desc", "job", "soft", "theme")}
    )
    level = 1.0 + group + rng.uniform(-0.05, 0.05, n) if term == "level" else rng.uniform(1, 3, n)
    return PeerValidation(fit, held, profiles, level)


@pytest.mark.parametrize("term", TERMS)
def test_tuning_picks_the_only_term_that_carries_signal(term):
    n = 48
    tuning = tune_weights(_validation(term, n), np.zeros(n, dtype=int), np.zeros((1, 1)), PeerConfig(k=5))
    assert tuning.weights == {t: float(t == term) for t in TERMS}
    assert tuning.learners == n
    assert tuning.valid_ndcg == tuning.alone[term] > max(v for t, v in tuning.alone.items() if t != term)


def test_tuned_weights_are_never_below_a_term_alone_on_validation():
    n, config = 90, PeerConfig(k=10, neighbour_clusters=1, max_candidates=40, active_candidates=15, seed=3)
    validation = _validation(None, n, seed=1)
    # noisy clusters
    labels = np.where(np.random.default_rng(2).random(n) < 0.8, np.arange(n) % 3, np.arange(n) % 2)
    centroids = np.array([[0.0], [1.0], [3.0]])
    tuning = tune_weights(validation, labels, centroids, config, max_learners=60)

    def scored(weights: dict) -> float:  # the production ranking, scored by the test protocol on the carve
        settings = replace(config, **{f"{t}_weight": w for t, w in weights.items()})
        peers = hybrid_peers(
            validation.fit,
            validation.profiles,
            validation.proficiency,
            labels,
            centroids,
            np.full(n, None, dtype=object),
            settings,
        )
        ranked = ranked_matrix(peers, config.k)
        scores = evaluate_peers(validation.held, {"x": ranked}, ks=(10,), max_learners=60, seed=config.seed)[
            0
        ]
        return scores["x"]["ndcg@10"]

    assert scored(tuning.weights) == pytest.approx(tuning.valid_ndcg)
    for term in TERMS:
        assert scored({t: float(t == term) for t in TERMS}) == pytest.approx(tuning.alone[term])
        assert tuning.alone[term] <= tuning.valid_ndcg
    assert tuning.valid_ndcg > max(tuning.alone.values())  # the mixture earns its place here
    grid = weight_grid()
    assert (grid.max(axis=1) == 1).all() and len(np.unique(grid, axis=0)) == len(grid)
    np.testing.assert_array_equal(grid[: len(TERMS)], np.eye(len(TERMS)))


def test_the_tuning_sample_keeps_each_learners_profile_and_cluster():
    validation, labels = _validation("profile", 30), np.arange(30) % 4
    sample, sampled_labels = tuning_sample(validation.profiles, labels, limit=12, seed=1)
    assert len(sample.ids) == 12 and len(set(sample.ids)) == 12
    np.testing.assert_array_equal(sampled_labels, labels[sample.ids])  # ids are the row numbers here
    np.testing.assert_allclose(sample.stacked(), validation.profiles.stacked(sample.ids.astype(int)))
    assert tuning_sample(validation.profiles, labels, limit=30)[0] is validation.profiles  # nothing to sample


def test_bootstrap_interval_matches_the_normal_one_and_shares_resamples_across_columns():
    rng = np.random.default_rng(0)
    x = rng.exponential(size=2000)
    low, high = bootstrap_ci(np.c_[x, x + 1.0, x], resamples=2000, seed=3)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert low[0] < x.mean() < high[0]
    assert (high[0] - low[0]) == pytest.approx(2 * half, rel=0.1)  # the CLT interval on a large sample
    # same resamples for every column
    np.testing.assert_allclose([low[1], high[1]], [low[0] + 1, high[0] + 1])
    assert low[2] == low[0] and high[2] == high[0]
    with pytest.raises(ValueError):
        bootstrap_ci(np.ones((1, 2)))


def test_eq20_renormalises_over_the_signals_of_a_week_without_a_rating():
    weights = StateWeights(alpha=0.2, beta=0.5, gamma=0.3, eta1=0.5, eta2=0.3, eta3=0.2, delta=0.5, theta=0.6)
    data = frame(
        [
            ("u", "a", 80.0, 4.0, T0, "beginner", 50.0),
            ("u", "b", 40.0, 2.0, T0 + pd.Timedelta(days=1), "intermediate", 50.0),
            ("u", "c", 60.0, np.nan, T0 + pd.Timedelta(days=8), "advanced", 150.0),  # week 1: no rating
            ("v", "a", 100.0, 5.0, T0 + pd.Timedelta(days=2), "beginner", 10.0),
        ]
    )
    state = learner_state(data, (1.0, 5.0), weights).set_index(["learner_id", "week"])
    rated, unrated = state.loc[("u", 0)], state.loc[("u", 1)]
    # engagement minutes 60, 90 and 10 min-max scaled: 0.625, 1, 0
    assert rated[["W", "R", "E"]].tolist() == pytest.approx([0.6, 0.5, 0.625]) and np.isnan(unrated["R"])
    assert rated["P"] == pytest.approx(0.5 * 0.6 + 0.3 * 0.5 + 0.2 * 0.625)  # every weight, summing to 1
    # eta1, eta3 renormalised: 0.714
    assert unrated["P"] == pytest.approx((0.5 * 0.6 + 0.2 * 1.0) / (0.5 + 0.2))
    assert unrated["T"] == pytest.approx((0.5 * 0.6 + 0.3 * 1.0) / (0.5 + 0.3))  # eq. 6 likewise
    # eq. 21 from the first week's mean level (0 and 1 -> 0.5) through both weeks
    assert unrated["target_difficulty"] == pytest.approx(
        0.5 + 0.5 * (rated["P"] - 0.6) + 0.5 * (unrated["P"] - 0.6)
    )


def test_eq21_steps_up_above_theta_and_down_below_it():
    learners = np.array(["a", "a", "b", "c"], dtype=object)
    p = np.array([0.9, 0.8, 0.2, 0.7])
    level = np.array([1.0, np.nan, 0.1, np.nan])  # each learner's first window counts; c's is unknown: 1
    path = difficulty_path(learners, p, level, delta=0.5, theta=0.6)
    # a: 1 + 0.5 * 0.3, then + 0.5 * 0.2; b: 0.1 - 0.5 * 0.4 clipped to 0; c: 1 + 0.5 * 0.1
    np.testing.assert_allclose(path, [1.15, 1.25, 0.0, 1.05])
    state = pd.DataFrame({"learner_id": learners, "week": [0, 1, 0, 3], "P": p, "level": level})
    assert last_targets(state, 0.5, 0.6).to_dict() == pytest.approx({"a": 1.25, "b": 0.0, "c": 1.05})
    assert last_targets(state, 0.0, 0.6).to_dict() == pytest.approx({"a": 1.0, "b": 0.1, "c": 1.0})  # no step


def test_steering_tuning_picks_the_point_best_on_validation():
    """Courses at levels 0, 1, 2. Two strong learners (P 0.95, 0.85) go on to the advanced course, two weak
    ones (P 0.3, 0.2) to the beginner course; all start at level 0.8. Only delta 2, theta 0.6 moves the strong
    above 1.5 (2.0) and the weak below 0.5 (0.0), which puts every validation course first."""
    weeks = [(0.95, 0.85)] * 2 + [(0.3, 0.2)] * 2
    state = pd.DataFrame(
        [(u, w, p, 0.8 if w == 0 else np.nan) for u, ps in enumerate(weeks) for w, p in enumerate(ps)],
        columns=["learner_id", "week", "P", "level"],
    )
    valid = {0: {2}, 1: {2}, 2: {0}, 3: {0}}
    data = TrainData(np.arange(4), np.arange(3), sparse.csr_matrix((4, 3)), difficulty=np.array([0, 1, 2]))

    def score(
        targets: pd.Series,
    ) -> float:  # validation nDCG@10 of the ranking by level match with these targets
        top = LevelMatch().fit(data, targets.reindex(range(4)).to_numpy(float)).recommend(np.arange(4), 3)
        return float(np.mean([ranking_metrics(top[r], valid[r], 10)["ndcg"] for r in range(4)]))

    steering = tune_steering(state, score, deltas=(0.0, 1.0, 2.0), thetas=(0.3, 0.6, 0.9))
    assert (steering.delta, steering.theta, steering.valid_ndcg) == (2.0, 0.6, pytest.approx(1.0))
    assert len(steering.grid) == 7  # delta 0 once: theta does nothing without a step
    unsteered = steering.grid.iloc[0]  # every target 0.8: levels 1, 0, 2 in that order
    assert unsteered["ndcg@10"] == pytest.approx((2 / np.log2(4) + 2 / np.log2(3)) / 4)


def test_each_peer_reason_names_its_term_with_the_evidence():
    """Learner 0 took a, b; 1 took a, b, c; 2 took c; 3 nothing. Jobs: analyst, analyst, none, nurse."""
    binary = sparse.csr_matrix(
        np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float32)
    )
    jobs = np.array(["analyst", "analyst", None, "nurse", pd.NA, float("nan")], dtype=object)
    pairs = [
        (0, 1, 0, "2 courses in common"),
        (0, 2, 0, "0 courses in common"),
        (1, 2, 0, "1 course in common"),
        (0, 1, 1, "same job (analyst)"),
        (2, 3, 1, "similar interests"),  # no job
        (0, 3, 1, "similar interests"),  # another job
        (0, 1, 2, "similar level"),
        (3, 1, 3, "active learner (3 courses)"),
        (0, 2, 3, "active learner (1 courses)"),
        (4, 5, 1, "similar interests"),  # missing jobs as pd.NA and NaN
    ]
    rows, peers, kinds, expected = (np.array(column) for column in zip(*pairs))
    assert peer_reasons(kinds, rows, peers, binary, jobs).tolist() == expected.tolist()
