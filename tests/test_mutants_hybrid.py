"""The hybrid (equation 6 plus the level term), its grid search and the validation carve on hand-computed
cases (kills mutants of coursepilot/models/hybrid.py)."""

from __future__ import annotations

import math
import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from coursepilot.models.base import TrainData
from coursepilot.models.hybrid import (
    Carve,
    Hybrid,
    Tuning,
    blend_tops,
    carve_validation,
    latest_on_platform,
    latest_per_learner,
    level_targets_scorer,
    time_rank,
    tune,
    validation_data,
)
from coursepilot.sampling import sample_learners
from coursepilot.splits import coded_interactions

from .fixed_scores import FixedScores

# Two learners, four courses of difficulty beginner, advanced, beginner, advanced. Learner 0 took course 0
# (target level 0), learner 1 course 1 (target 2), so level(s, c) = 1 - |t_s - d_c| / 2 is [1, 0, 1, 0] and
# [0, 1, 0, 1]. CF and content are already min-max normalised per learner.
CF = [[0.0, 1.0, 0.6, 0.5], [0.0, 0.0, 0.2, 1.0]]
CONTENT = [[0.0, 0.3, 1.0, 0.0], [1.0, 0.0, 0.6, 0.1]]
LEVEL = [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]
VALID = {0: {2}, 1: {3}}  # on validation learner 0 takes course 2, learner 1 course 3
SECOND, THIRD = 1 / math.log2(3), 1 / math.log2(4)  # nDCG of the one relevant course ranked 2nd, 3rd


def _data() -> TrainData:
    matrix = sparse.csr_matrix(([1.0, 1.0], ([0, 1], [0, 1])), shape=(2, 4))
    return TrainData(
        np.array(["u", "v"], dtype=object),
        np.array(list("abcd"), dtype=object),
        matrix,
        difficulty=np.array([0, 2, 0, 2]),
    )


def _hybrid(**kwargs) -> Hybrid:
    return Hybrid(FixedScores(CF), FixedScores(CONTENT), **kwargs)


def test_equation_6_with_the_level_term_by_hand():
    cf = [[0.0, 2.0, 4.0, 1.0], [3.0, 1.0, 2.0, 1.0]]  # min-max per learner: [0, .5, 1, .25], [1, 0, .5, 0]
    content = [[1.0, 0.0, 0.5, 0.5], [0.0, 0.0, 4.0, 2.0]]  # [1, 0, .5, .5], [0, 0, 1, .5]
    hybrid = Hybrid(FixedScores(cf), FixedScores(content), alpha=0.25, level_weight=0.4).fit(_data())
    rows = np.array([0, 1])
    parts = hybrid.parts(rows)
    np.testing.assert_allclose(parts[0], [[0, 0.5, 1, 0.25], [1, 0, 0.5, 0]])
    np.testing.assert_allclose(parts[1], [[1, 0, 0.5, 0.5], [0, 0, 1, 0.5]])
    np.testing.assert_allclose(parts[2], LEVEL)
    # 0.25 CF + 0.75 content + 0.4 level
    expected = [[1.15, 0.125, 1.025, 0.4375], [0.25, 0.4, 0.875, 0.775]]
    np.testing.assert_allclose(hybrid.score(rows), expected)
    assert hybrid.cf.fitted_on is hybrid.content.fitted_on is hybrid.data  # the parts are fitted too


def test_defaults_and_targets_replace_the_learners_level():
    hybrid = _hybrid()
    assert (hybrid.alpha, hybrid.level_weight, hybrid.name) == (0.5, 0.0, "hybrid")
    # targets 2 for learner 0; NaN for learner 1 falls back to their own level (2)
    hybrid.fit(_data(), targets=np.array([2.0, np.nan]))
    np.testing.assert_allclose(hybrid.level(np.array([0, 1])), [[0, 1, 0, 1], [0, 1, 0, 1]])
    np.testing.assert_allclose(
        hybrid.score(np.array([0])), [np.multiply(0.5, CF[0]) + np.multiply(0.5, CONTENT[0])]
    )


def test_tuning_choice():
    tuning = Tuning(0.3, 0.2, 0.9, 0.7, pd.DataFrame())
    assert tuning.choice(True) == (0.3, 0.2) and tuning.choice(False) == (0.7, 0.0)


def test_grid_search_by_hand_and_a_tie_goes_to_the_smaller_level_weight():
    """Learner 0 (relevant: course 2) and learner 1 (course 3), seen courses excluded:
    alpha 0: content ranks 2 first for 0, 3 third for 1; with w 0.8 learner 1's course 3 moves up to second.
    alpha 0.5: both first, with or without the level term. alpha 1: CF puts 2 second for 0, 3 first for 1;
    w 0.8 moves 2 first."""
    tuning = tune(_hybrid(), _data(), VALID, alphas=(0.0, 0.5, 1.0), level_weights=(0.0, 0.8))
    expected = [(1 + THIRD) / 2, (1 + SECOND) / 2, 1.0, 1.0, (SECOND + 1) / 2, 1.0]
    assert tuning.grid["alpha"].tolist() == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    assert tuning.grid["level_weight"].tolist() == [0.0, 0.8] * 3
    np.testing.assert_allclose(tuning.grid["ndcg@10"], expected, rtol=1e-6)
    # three points reach 1: the one without the level term wins
    assert (tuning.alpha, tuning.level_weight, tuning.valid_ndcg) == (0.5, 0.0, pytest.approx(1.0))
    assert tuning.alpha_without_level == 0.5


def test_the_plain_alpha_is_the_best_without_the_level_term():
    # only alpha 0 and 1: with the level term alpha 1 is best (1.0); without it alpha 1 too (0.815 vs 0.75)
    tuning = tune(_hybrid(), _data(), VALID, alphas=(0.0, 1.0), level_weights=(0.8, 0.0))
    assert (tuning.alpha, tuning.level_weight) == (1.0, 0.8) and tuning.alpha_without_level == 1.0
    # learner 1 alone: alpha 0 ranks course 3 third without the level term, second with it; alpha 1 first
    alone = tune(_hybrid(), _data(), {1: {3}}, alphas=(0.0, 1.0), level_weights=(0.0, 0.8), max_learners=5)
    np.testing.assert_allclose(alone.grid["ndcg@10"], [THIRD, SECOND, 1.0, 1.0], rtol=1e-6)


def test_level_targets_scorer_by_hand():
    hybrid = _hybrid(alpha=0.0, level_weight=0.8).fit(_data())
    ndcg = level_targets_scorer(hybrid, _data(), VALID)
    assert ndcg(None) == pytest.approx((1 + SECOND) / 2)  # the learners' own levels: as in the grid
    # swapped targets: learner 0 (t 2) gets course 2 second, learner 1 (t 0) course 3 third
    assert ndcg(np.array([2.0, 0.0])) == pytest.approx((SECOND + THIRD) / 2)
    # one learner at a time (the two above are symmetric): learner 0 ranks course 2 first by content + level
    assert level_targets_scorer(hybrid, _data(), {0: {2}})(None) == pytest.approx(1.0)
    # alpha 0.5 without the level term: learner 1 ranks course 3 (0.55) above course 0 (0.5) and 2 (0.4)
    plain = _hybrid(alpha=0.5, level_weight=0.0).fit(_data())
    assert level_targets_scorer(plain, _data(), {1: {3}})(None) == pytest.approx(1.0)


def test_level_targets_scorer_ranks_as_the_grid_with_more_than_ten_courses_a_class():
    """36 courses, 12 of each difficulty: each learner's top 10 out of the 10 best of each class is the
    top 10 over every course, so the scorer's nDCG equals the grid's at the hybrid's own alpha and weight."""
    rng = np.random.default_rng(11)
    learners, courses = 8, 36
    taken = rng.random((learners, courses)) < 0.15
    taken[np.arange(learners), np.arange(learners)] = True  # everyone took a course
    data = TrainData(
        np.arange(learners).astype(str).astype(object),
        np.arange(courses).astype(str).astype(object),
        sparse.csr_matrix(taken.astype(float)),
        difficulty=np.repeat([0, 1, 2], 12),
    )
    valid = {
        r: set(rng.choice(np.flatnonzero(~taken[r]), 3, replace=False).tolist()) for r in range(learners)
    }
    hybrid = Hybrid(
        FixedScores(rng.random((learners, courses))), FixedScores(rng.random((learners, courses)))
    )
    for alpha, weight in ((0.3, 0.4), (0.8, 0.05)):
        hybrid.alpha, hybrid.level_weight = alpha, weight
        grid = tune(hybrid, data, valid, alphas=(alpha,), level_weights=(weight, 0.0)).grid  # 0: the plain
        hybrid.fit(data)
        assert level_targets_scorer(hybrid, data, valid)(None) == pytest.approx(
            grid["ndcg@10"].iloc[0], rel=1e-5
        )


def _brute_force(cf, content, level, seen, points, k):
    out = []
    for alpha, weight in points:
        blend = alpha * cf + (1 - alpha) * content + weight * level
        blend[seen] = -np.inf
        out.append(np.argsort(-blend, axis=1, kind="stable")[:, :k])
    return out


@pytest.mark.parametrize("seed", range(4))
def test_blend_tops_over_the_candidates_equal_ranking_every_course(seed):
    rng = np.random.default_rng(seed)
    rows, n = 12, 30
    cf, content = rng.random((rows, n)), rng.random((rows, n))
    level = rng.choice([0.0, 0.5, 1.0], (rows, n)) + rng.random((rows, n)) * 1e-3  # no ties
    seen = rng.random((rows, n)) < 0.2
    seen[0, :27] = True  # three unseen courses: fewer than the candidates
    points = [(a, w) for a in (0.0, 0.3, 1.0) for w in (0.0, 0.4, 3.0)]
    expected = _brute_force(cf, content, level, seen, points, 5)
    for got, want in zip(blend_tops(cf, content, level, seen, points, k=5, candidates=4), expected):
        np.testing.assert_array_equal(got[1:], want[1:])
        assert set(got[0][:3]) == set(want[0][:3])  # learner 0: their three unseen courses first
    # every course a candidate (2 x 20 >= 30): ranked directly; k above the courses: all of them
    for got, want in zip(
        blend_tops(cf, content, level, seen, points, k=40), _brute_force(cf, content, level, seen, points, 30)
    ):
        assert got.shape == (rows, 30)
        np.testing.assert_array_equal(got[1:, :5], want[1:, :5])


def test_blend_tops_prunes_to_the_candidates_when_they_clearly_lead():
    """Eight courses per learner score 0.9-1 by CF and content, the others below 0.1: the fifth best candidate
    beats any other course's bound, so the candidates alone are ranked (no fallback to every course)."""
    rng = np.random.default_rng(5)
    rows, n = 6, 40
    cf, content = rng.random((rows, n)) * 0.1, rng.random((rows, n)) * 0.1
    for r in range(rows):
        lead = rng.choice(n, 8, replace=False)
        cf[r, lead], content[r, lead] = 0.9 + rng.random(8) * 0.1, 0.9 + rng.random(8) * 0.1
    level = rng.random((rows, n)) * 0.2
    seen = np.zeros((rows, n), bool)
    seen[:, :3] = True
    seen[np.arange(rows), np.argmax(cf, axis=1)] = True  # each learner's best CF course is already taken
    points = [(a, w) for a in (0.0, 0.5, 1.0) for w in (0.0, 0.4)]
    tops = blend_tops(cf, content, level, seen, points, k=5, candidates=10)
    for got, want in zip(tops, _brute_force(cf, content, level, seen, points, 5)):
        np.testing.assert_array_equal(got, want)
    assert blend_tops(cf, content, level, seen, points[:1], candidates=10)[0].shape == (rows, 10)  # k: 10


def test_blend_tops_by_hand():
    cf = np.array([[1.0, 0.0, 0.5, 0.2, 0.9]])
    content = np.array([[0.0, 1.0, 0.5, 0.4, 0.1]])
    level = np.array([[0.0, 0.0, 1.0, 0.0, 0.0]])
    seen = np.array([[False, False, False, False, True]])
    points = [(1.0, 0.0), (0.0, 0.0), (0.5, 0.0), (0.5, 1.0)]
    tops = blend_tops(cf, content, level, seen, points, k=2, candidates=2)
    assert [t.tolist() for t in tops] == [[[0, 2]], [[1, 2]], [[0, 1]], [[2, 0]]]


def _coded(rows, ts=True) -> pd.DataFrame:
    frame = pd.DataFrame(np.array(rows, dtype=np.int64).reshape(-1, 3), columns=["row", "col", "ts"])
    return frame if ts else frame.drop(columns="ts")


def test_latest_per_learner_defaults_by_hand():
    # learner 0: five rows (latest round(5 * 0.2) = 1 held); learner 1: three rows (1 held);
    # learner 2: two rows (none held)
    train = _coded(
        [(0, c, t) for c, t in enumerate([5, 1, 4, 2, 3])]
        + [(1, 5, 9), (1, 6, 7), (1, 7, 8)]
        + [(2, 0, 1), (2, 1, 2)]
    )
    held = latest_per_learner(train)
    assert np.flatnonzero(held).tolist() == [0, 5]
    assert np.flatnonzero(latest_per_learner(train, share=0.5)).tolist() == [0, 2, 5, 7]
    assert carve_validation(train).rule == "per_learner"


def test_latest_on_platform_defaults_by_hand():
    # ten rows by time 0..9: the latest 2 held, but learner 1's only row stays (their history)
    train = _coded([(0, c, t) for c, t in enumerate(range(9))] + [(1, 9, 9)])
    assert np.flatnonzero(latest_on_platform(train)).tolist() == [8]
    assert np.flatnonzero(latest_on_platform(train, share=0.3)).tolist() == [7, 8]
    assert not latest_on_platform(_coded([])).any() and len(latest_on_platform(_coded([]))) == 0


def test_without_timestamps_the_seeded_order_decides_and_the_default_seed_is_0():
    train = _coded([(r, c, 0) for r in range(6) for c in range(10)], ts=False)
    rank = time_rank(train, 0)
    assert rank.dtype == np.int64 and sorted(rank) == list(range(60))
    np.testing.assert_array_equal(rank[np.random.default_rng(0).permutation(60)], np.arange(60))
    held = latest_per_learner(train)
    np.testing.assert_array_equal(held, latest_per_learner(train, rank=rank))
    assert not np.array_equal(held, latest_per_learner(train, seed=1))
    carve = carve_validation(train)
    assert carve.rule == "per_learner" and carve.learners == {"per_learner": 6}
    np.testing.assert_array_equal(carve.held, held)


def test_ties_in_time_keep_the_seeded_order():
    ts = np.repeat([2, 1], 100)  # two timestamps, a hundred rows each
    train = _coded([(0, i, t) for i, t in enumerate(ts)])
    perm = np.random.default_rng(3).permutation(200)
    order = perm[np.lexsort((np.arange(200), ts[perm]))]  # by time, then the seeded position
    np.testing.assert_array_equal(np.argsort(time_rank(train, 3)), order)


def test_carve_rule_choice_and_its_description():
    # learners 0-3 one row each at times 0-3, learner 4 ten rows at 10-19: per learner only learner 4 has
    # three rows; the platform's latest 3 of 14 rows are learner 4's too: one learner each, a tie
    rows = [(r, 0, r) for r in range(4)] + [(4, c, 10 + c) for c in range(10)]
    carve = carve_validation(_coded(rows))
    assert carve.rule == "per_learner" and carve.learners == {"per_learner": 1, "platform": 1}
    # learners 0-3 two rows each (times r and 10 + r), learner 4 three (4, 5, 6): per learner only learner 4;
    # the platform's latest half (6 of 11 rows: 5, 6, 10-13) holds all five, each keeping an earlier row
    rows = [(r, c, t) for r in range(4) for c, t in ((0, r), (1, 10 + r))] + [(4, c, 4 + c) for c in range(3)]
    carve = carve_validation(_coded(rows), share=0.5)
    assert carve.rule == "platform" and carve.learners == {"per_learner": 1, "platform": 5}
    np.testing.assert_array_equal(carve.held, latest_on_platform(_coded(rows), share=0.5))
    held = np.zeros(3, bool)
    assert Carve(held, "platform", {"per_learner": 1234, "platform": 5678}).describe() == (
        "the platform's latest rows, 5,678 validation learners (each learner's latest rows would hold 1,234)"
    )
    assert (
        Carve(held, "per_learner", {"per_learner": 3}).describe()
        == "each learner's latest rows, 3 validation learners"
    )


DAY = 86_400
JAN_1 = 1_704_067_200  # 2024-01-01 in seconds since the epoch


def _warehouse():
    """Learners u, v, w, courses a-f: u took a-e on Jan 1-5 (ratings 5, 3, 1, 5, 4), v a, c, f on Jan 1, 6, 7
    (2, 4, 5), w b, d on Jan 2, 3 (3, 1); u-f and w-a are test rows."""
    con = duckdb.connect()
    rows = [
        ("u", "a", 1, 5),
        ("u", "b", 2, 3),
        ("u", "c", 3, 1),
        ("u", "d", 4, 5),
        ("u", "e", 5, 4),
        ("v", "a", 1, 2),
        ("v", "c", 6, 4),
        ("v", "f", 7, 5),
        ("w", "b", 2, 3),
        ("w", "d", 3, 1),
        ("u", "f", 8, 5),
        ("w", "a", 9, 5),
    ]
    interactions = pd.DataFrame(rows, columns=["learner_id", "course_id", "day", "rating"])
    interactions["ts"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(interactions["day"] - 1, unit="D")
    interactions["rating"] = interactions["rating"].astype(float)
    con.register("rows_", interactions.assign(split=["train"] * 10 + ["test"] * 2))
    con.execute("CREATE TABLE interactions AS SELECT learner_id, course_id, ts, rating FROM rows_")
    con.execute("CREATE TABLE split AS SELECT learner_id, course_id, ts, rating, split FROM rows_")
    con.unregister("rows_")
    return con


def _six_courses() -> TrainData:
    return TrainData(
        np.array(["u", "v", "w"], dtype=object),
        np.array(list("abcdef"), dtype=object),
        sparse.csr_matrix((3, 6)),
        difficulty=np.array([0, 1, 2, 0, 1, 2]),
    )


def test_validation_data_by_hand():
    """Share 0.2 by default: u's latest row (e) and v's (f) are held; w has two rows, too few. The
    platform's latest 2 of 10 are both v's (one learner): each learner's latest rows hold more. The rest is
    the fit data, confidence 1 + (rating - 1) / 4 on the 1-5 scale, with its times; the held rows are the
    validation sets."""
    con = _warehouse()
    data = _six_courses()
    fit_data, valid, carve = validation_data(con, data, (1.0, 5.0))
    expected = [
        [2.0, 1.5, 1.0, 2.0, 0.0, 0.0],  # u: a 5, b 3, c 1, d 5 (e held)
        [1.25, 0.0, 1.75, 0.0, 0.0, 0.0],  # v: a 2, c 4 (f held)
        [0.0, 1.5, 0.0, 1.0, 0.0, 0.0],  # w: b 3, d 1
    ]
    np.testing.assert_allclose(fit_data.matrix.toarray(), expected)
    days = [[1, 2, 3, 4, 0, 0], [1, 0, 6, 0, 0, 0], [0, 2, 0, 3, 0, 0]]
    times = np.where(np.array(days) > 0, JAN_1 + (np.array(days) - 1) * DAY, 0)
    assert fit_data.times.shape == (3, 6)
    np.testing.assert_array_equal(fit_data.times.toarray(), times)
    assert valid == {0: {4}, 1: {5}}
    assert carve.rule == "per_learner" and carve.learners == {"per_learner": 2, "platform": 1}
    assert fit_data.learner_ids is data.learner_ids and fit_data.difficulty is data.difficulty
    # the coded training rows given instead of the warehouse: the same split, no query
    train = coded_interactions(con, ("train",), data.learner_ids, data.course_ids)
    again = validation_data(None, data, (1.0, 5.0), train=train)
    np.testing.assert_array_equal(again.fit_data.matrix.toarray(), fit_data.matrix.toarray())
    assert again.valid == valid and np.array_equal(again.carve.held, carve.held)
    # share 0.4: u holds its latest round(2.0) = 2 rows (d, e), v round(1.2) = 1 (f); the platform's latest
    # 4 of 10 (v f, c; u e, d) hold the same two learners: a tie kept by the test's own rule
    part = validation_data(con, data, (1.0, 5.0), share=0.4)
    assert part.valid == {0: {3, 4}, 1: {5}} and part.carve.learners == {"per_learner": 2, "platform": 2}
    assert part.carve.rule == "per_learner"


def test_validation_data_seed_breaks_ties_in_time():
    """One learner, five rows at one time: the held row is the last of the seeded permutation of the rows
    (np.random.default_rng(seed).permutation(5)[-1]); seed 0 by default."""
    data = TrainData(
        np.array(["u"], dtype=object), np.array(list("abcde"), dtype=object), sparse.csr_matrix((1, 5))
    )
    train = pd.DataFrame(
        {"row": np.zeros(5, int), "col": np.arange(5), "ts": pd.Timestamp("2024-01-01"), "rating": 3.0}
    )
    for seed in (0, 1):
        last = int(np.random.default_rng(seed).permutation(5)[-1])
        kwargs = {} if seed == 0 else {"seed": seed}
        fit_data, valid, _ = validation_data(None, data, (1.0, 5.0), train=train, **kwargs)
        assert valid == {0: {last}}
        assert fit_data.matrix.toarray()[0].tolist() == [0.0 if c == last else 1.5 for c in range(5)]
    assert np.random.default_rng(0).permutation(5)[-1] != np.random.default_rng(1).permutation(5)[-1]


def test_latest_rules_follow_a_given_time_rank():
    """A rank given by the caller (one sort shared by both rules) decides, not the rows' own times."""
    train = _coded([(0, c, t) for c, t in enumerate([1, 2, 3, 4, 5])])
    reverse = np.array([4, 3, 2, 1, 0])  # the first row is the latest by this rank
    assert np.flatnonzero(latest_per_learner(train, rank=reverse)).tolist() == [0]
    two = _coded([(0, c, t) for c, t in enumerate([1, 2, 3, 4, 5])] + [(1, 5, 6), (1, 6, 7), (1, 7, 8)])
    rank = np.array([7, 6, 5, 4, 3, 2, 1, 0])  # the platform's latest 2 by this rank: rows 0 and 1
    assert np.flatnonzero(latest_on_platform(two, rank=rank)).tolist() == [0, 1]


def test_latest_on_platform_seed_breaks_ties_in_time():
    """Ten rows at one time (two learners of five): the held 2 are the last two of
    np.random.default_rng(seed).permutation(10); seed 0 by default."""
    train = _coded([(r // 5, r, 0) for r in range(10)])
    for seed in (0, 1):
        last_two = sorted(np.random.default_rng(seed).permutation(10)[-2:].tolist())
        kwargs = {} if seed == 0 else {"seed": seed}
        assert np.flatnonzero(latest_on_platform(train, **kwargs)).tolist() == last_two


def test_tune_samples_validation_learners_with_its_seed():
    """max_learners 1 of the two: alpha 0 without the level term scores 1 for learner 0 (content ranks course
    2 first) and 1/log2(4) for learner 1 (course 3 third); the seed picks the learner as sample_learners
    does."""
    by_learner = {0: 1.0, 1: THIRD}
    for seed in (0, 1):
        (learner,) = sample_learners(VALID, 1, seed)
        kwargs = {} if seed == 0 else {"seed": seed}
        tuning = tune(
            _hybrid(), _data(), VALID, alphas=(0.0,), level_weights=(0.0,), max_learners=1, **kwargs
        )
        assert tuning.valid_ndcg == pytest.approx(by_learner[learner])
    assert set(sample_learners(VALID, 1, 0)) != set(sample_learners(VALID, 1, 1))


def test_tune_fits_the_parts_unless_told_they_are_fitted():
    fitted = _hybrid()
    tune(fitted, _data(), VALID, alphas=(0.5,), level_weights=(0.0,))
    assert fitted.cf.fitted_on is fitted.content.fitted_on is fitted.data
    kept = _hybrid()
    tune(kept, _data(), VALID, alphas=(0.5,), level_weights=(0.0,), fit_parts=False)
    assert kept.cf.fitted_on is None and kept.content.fitted_on is None and kept.data is not None


def test_the_plain_alpha_ignores_the_level_weighted_points():
    """Learner 0 alone (course 2): alpha 1 ranks it second by CF (course 1 first), first with w 0.8 (level 1);
    alpha 0 ranks it first by content either way. With the level term both reach 1; without it only
    alpha 0."""
    tuning = tune(_hybrid(), _data(), {0: {2}}, alphas=(1.0, 0.0), level_weights=(0.0, 0.8))
    np.testing.assert_allclose(tuning.grid["ndcg@10"], [SECOND, 1.0, 1.0, 1.0], rtol=1e-6)
    assert tuning.alpha_without_level == 0.0 and (tuning.alpha, tuning.level_weight) == (0.0, 0.0)


def test_blend_tops_ranks_the_candidates_by_the_sum_of_the_parts():
    """Eight courses, three candidates per part: A (CF 1, content 0.9) and B (0.8, 0) lead, the rest are 0, so
    the bounds are 0 and the candidates alone are ranked: A scores 0.95 and B 0.4 at alpha 0.5."""
    cf = np.array([[1.0, 0.8, 0, 0, 0, 0, 0, 0]])
    content = np.array([[0.9, 0.0, 0, 0, 0, 0, 0, 0]])
    none = np.zeros((1, 8))
    tops = blend_tops(cf, content, none, none > 0, [(0.5, 0.0)], k=1, candidates=3)
    assert tops[0].tolist() == [[0]]


def test_blend_tops_never_ranks_a_seen_candidate():
    """Three unseen courses (0-2) of ten, four candidates per part: a seen course fills each list. The seen
    courses score best by CF and content (1), yet the top 2 are unseen: 1 (0.9) and 0 (0.5) at alpha 0.5."""
    cf = np.array([[0.5, 0.9, 0.1] + [1.0] * 7])
    seen = np.arange(10)[None, :] >= 3
    level = np.zeros((1, 10))
    assert blend_tops(cf, cf.copy(), level, seen, [(0.5, 0.0)], k=2, candidates=4)[0].tolist() == [[1, 0]]


def test_blend_tops_with_fewer_unseen_courses_than_candidates_warns_nothing():
    """Alpha 0 and 1 times an infinite bound (fewer unseen courses than candidates) would be 0 * -inf: the
    code ignores that invalid value instead of warning."""
    rng = np.random.default_rng(1)
    cf, content, level = rng.random((3, 12)), rng.random((3, 12)), rng.random((3, 12))
    seen = np.zeros((3, 12), bool)
    seen[0, 2:] = True  # learner 0: two unseen courses
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tops = blend_tops(cf, content, level, seen, [(0.0, 0.2), (1.0, 0.0)], k=2, candidates=4)
    assert [set(t[0]) for t in tops] == [{0, 1}, {0, 1}]
    for top, (alpha, weight) in zip(tops, [(0.0, 0.2), (1.0, 0.0)]):
        blend = alpha * cf[1:] + (1 - alpha) * content[1:] + weight * level[1:]
        np.testing.assert_array_equal(top[1:], np.argsort(-blend, axis=1)[:, :2])
