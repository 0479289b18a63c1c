"""Learner labels on tiny hand-made feature tables (kills mutants of coursepilot/labels.py).

Every case is small enough to train on in well under a second: a few dozen learners, a few trees.
"""

from __future__ import annotations

import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from coursepilot.features import FeatureTable, min_max
from coursepilot.labels import (
    NO_LEARNERS,
    NO_RULE,
    LearnerLabelConfig,
    Scores,
    _classifiers,
    _stratified_sample,
    _training_labels,
    _why_unlearnable,
    difficulty_from_cues,
    fill_difficulty,
    label_courses,
    label_learners,
    neutral_labels,
    performance_score,
    threshold_labels,
    truth_labels,
)


def _features(**columns) -> FeatureTable:
    """Raw columns (learner ids L000...) normalised by equation (1)."""
    raw = pd.DataFrame(columns)
    raw.insert(0, "learner_id", [f"L{i:03d}" for i in range(len(raw))])
    names = list(columns)
    return FeatureTable(raw, pd.concat([raw[["learner_id"]], min_max(raw[names])], axis=1), names, {})


def _separable(n: int = 40) -> FeatureTable:
    """Half the learners grade 0-30, half 70-100 (a wide gap); courses taken carries nothing."""
    grades = np.r_[np.linspace(0, 30, n // 2), np.linspace(70, 100, n // 2)]
    return _features(avg_grade=grades, courses_taken=np.tile([1.0, 2.0, 3.0, 4.0], n // 4))


def test_scores_by_hand():
    # tp 2, fp 1, fn 1, tn 1: accuracy 3/5, F1 2*2 / (2*2 + 1 + 1)
    scores = Scores.of([True, True, False, False, True], [True, False, False, True, True])
    assert scores.accuracy == pytest.approx(0.6) and scores.f1 == pytest.approx(4 / 6)
    assert scores.confusion == [[1, 1], [1, 2]]  # rows: truth non-adaptive, adaptive
    # one class only: the matrix still has both rows and columns; no positive anywhere gives F1 0
    assert Scores.of([True] * 3, [True] * 3).confusion == [[0, 0], [0, 3]]
    assert Scores.of([False] * 3, [False] * 3).f1 == 0.0
    assert Scores.of([0, 1], [1, 1]).confusion == [[0, 1], [0, 1]]  # truthy values taken as bool


def test_scores_take_any_truthy_value_as_adaptive_and_score_no_positive_as_f1_0_silently():
    # 2 and 0.7 are truthy: both rows are true positives, the 0s true negatives
    assert Scores.of([2, 0, 0.7, 0], [1, 0, 3, 0]) == Scores(1.0, 1.0, [[2, 0], [0, 2]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn warns of an undefined F1 unless told what to return
        assert Scores.of([False, False], [False, False]).f1 == 0.0


def test_performance_score_skips_a_missing_feature():
    features = _features(avg_grade=[20.0, np.nan, 60.0], avg_watch_pct=[10.0, 30.0, 50.0])
    # normalised: grade 0, NaN, 1; watch 0, 0.5, 1: the learner without a grade scores by watch alone
    np.testing.assert_allclose(performance_score(features), [0.0, 0.5, 1.0])


def test_training_labels_from_truth_and_from_the_rule():
    features = _features(avg_grade=[10.0, 20.0, 30.0, 40.0])
    truth = pd.Series([True, False, True, False], index=["L003", "L002", "L001", "L000"])
    y, source, threshold = _training_labels(features, truth, 0.5)
    assert y.tolist() == [False, True, False, True] and source == "ground truth" and threshold is None
    with pytest.raises(ValueError, match=r"^ground truth is missing for 1 learners$"):
        _training_labels(features, truth.iloc[:3], 0.5)
    y, source, threshold = _training_labels(features, None, 0.5)
    assert y.tolist() == [False, False, True, True] and threshold == pytest.approx(0.5)
    assert source == "threshold rule (performance score > quantile 0.5)"
    assert _training_labels(_features(courses_taken=[1.0, 2.0]), None, 0.5) == (None, "none", None)


def test_why_unlearnable_messages():
    assert _why_unlearnable(None, None, 5) == f"no ground truth, and {NO_RULE}"
    everyone = np.array([True, True, True])
    assert _why_unlearnable(everyone, None, 2) == (
        "every one of the 3 learners has the training label adaptive: nothing to learn"
    )
    assert _why_unlearnable(~everyone, 0.25, 2) == (
        "every one of the 3 learners has the training label non-adaptive (performance-score threshold 0.25): "
        "nothing to learn"
    )
    y = np.array([False, False, True, True, True])
    assert _why_unlearnable(y, None, 3) == (
        "too few learners in a class of the training labels to cross-validate "
        "(non-adaptive 2, adaptive 3; 3 folds)"
    )
    assert _why_unlearnable(y, None, 2) is None  # two of each class: enough for two folds


def test_stratified_sample_without_replacement_and_no_draw_when_everything_fits():
    y = np.r_[np.zeros(10, bool), np.ones(10, bool)]
    picked = _stratified_sample(y, 16, np.random.default_rng(0), 2)
    assert len(np.unique(picked)) == len(picked) == 16  # 8 distinct rows of each class
    assert y[picked].sum() == 8 and np.all(np.diff(picked) > 0)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(_stratified_sample(y, 20, rng, 2), np.arange(20))
    # nothing drawn: the next sample (the SVM's after the forest's) does not depend on this one
    assert rng.random() == np.random.default_rng(0).random()


def test_the_classifiers_are_configured_as_documented():
    models = _classifiers(LearnerLabelConfig(rf_trees=7, seed=3))
    forest = models["rf"]
    assert isinstance(forest, RandomForestClassifier)
    assert (forest.n_estimators, forest.min_samples_leaf, forest.oob_score, forest.n_jobs) == (7, 2, True, 2)
    assert forest.random_state == 3
    imputer, scaler, calibrated = (step for _, step in models["svm"].steps)
    assert isinstance(imputer, SimpleImputer) and (imputer.strategy, imputer.add_indicator) == (
        "median",
        True,
    )
    assert isinstance(scaler, StandardScaler) and isinstance(calibrated, CalibratedClassifierCV)
    assert (calibrated.method, calibrated.ensemble) == ("sigmoid", False)
    assert isinstance(calibrated.estimator, SVC)
    assert (calibrated.estimator.kernel, calibrated.estimator.C) == ("rbf", 1.0)


def test_neutral_labels_of_no_learner_is_an_empty_table():
    assert len(neutral_labels([])) == 0 and len(neutral_labels([], np.array([], bool))) == 0
    labels = neutral_labels(["a", "b"], np.array([True, False]))
    assert labels["training_label"].tolist() == [True, False] and labels["adaptive"].isna().all()


def test_no_learner_gives_the_no_learners_fallback():
    result = label_learners(_features(avg_grade=np.array([], float)), None)
    assert result.fallback == NO_LEARNERS and len(result.labels) == 0


def test_a_fallback_names_the_rule_threshold_and_keeps_the_features():
    features = _features(avg_grade=[10.0, 20.0, 80.0, 90.0], courses_taken=[1.0, 2.0, 3.0, 4.0])
    result = label_learners(features, None, LearnerLabelConfig(cv_folds=5))
    # rule: threshold the median score 0.5; two learners a class, fewer than 5 folds
    assert result.fallback == (
        "too few learners in a class of the training labels to cross-validate "
        "(non-adaptive 2, adaptive 2; 5 folds) (performance-score threshold 0.5)"
    )
    assert result.cv == {} and result.features == ["avg_grade", "courses_taken"]
    assert result.threshold == pytest.approx(0.5) and result.chosen is None


def test_a_tie_goes_to_the_forest_and_the_majority_baseline_says_adaptive_at_half():
    features = _separable()
    truth = pd.Series(np.arange(40) >= 20, index=features.raw["learner_id"])
    result = label_learners(features, truth, LearnerLabelConfig(rf_trees=25, cv_folds=4))
    # both classifiers separate the gap perfectly out of sample: F1 1 each, the forest wins the tie
    assert result.cv["rf"].f1 == result.cv["svm"].f1 == 1.0 and result.chosen == "rf"
    # half the learners adaptive: the majority baseline predicts adaptive for everyone
    assert result.cv["majority"] == Scores(0.5, 2 / 3, [[0, 20], [0, 20]])
    assert result.features == ["avg_grade", "courses_taken"] and result.agreement == 1.0
    # where there is truth and a performance feature, the paper's rule is scored against it too
    rule = threshold_labels(features, 0.5)[0]
    assert result.rule_against_truth == Scores.of(truth.to_numpy(), rule)
    assert result.against_truth == Scores.of(truth.to_numpy(), result.labels["adaptive"])


def test_the_svm_is_scored_by_seeded_shuffled_folds_on_its_seeded_sample():
    rng = np.random.default_rng(7)
    grades = rng.random(40) * 100
    features = _features(avg_grade=grades, courses_taken=rng.integers(1, 9, 40).astype(float))
    truth = pd.Series(grades + rng.normal(0, 25, 40) > 50, index=features.raw["learner_id"])  # noisy
    config = LearnerLabelConfig(cv_folds=3, svm_max_train=30, seed=5, classifiers=("svm",))
    result = label_learners(features, truth, config)
    y = truth.to_numpy()
    X = features.normalised[features.used].to_numpy(float)
    rf_sample = _stratified_sample(y, config.rf_max_train, np.random.default_rng(5), 3)  # draws nothing
    idx = _stratified_sample(y, 30, np.random.default_rng(5), 3)
    assert len(rf_sample) == 40 and len(idx) == 30
    folds = StratifiedKFold(3, shuffle=True, random_state=5)
    oof = cross_val_predict(
        clone(_classifiers(config)["svm"]), X[idx], y[idx], cv=folds, method="predict_proba"
    )[:, 1]
    np.testing.assert_allclose(result.labels["p_adaptive"].to_numpy()[idx], oof)
    assert result.cv["svm"] == Scores.of(y[idx], oof > 0.5)


def test_truth_labels_from_the_warehouse_or_none():
    con = duckdb.connect()
    assert truth_labels(con) is None  # no truth_learners table: the source has no ground truth
    con.execute("CREATE TABLE truth_learners (learner_id VARCHAR, adaptive BOOLEAN)")
    con.execute("INSERT INTO truth_learners VALUES ('a', true), ('b', false)")
    truth = truth_labels(con)
    assert truth.index.tolist() == ["a", "b"] and truth.tolist() == [True, False] and truth.name == "adaptive"


def _uninformative(n: int = 20) -> tuple[FeatureTable, pd.Series]:
    """One constant feature (normalised to 0 for everyone), half the learners adaptive."""
    features = _features(courses_taken=np.full(n, 2.0))
    return features, pd.Series(np.arange(n) % 2 == 1, index=features.raw["learner_id"])


def test_a_forest_vote_tied_at_half_is_not_adaptive():
    """A one-tree forest on a constant feature is one leaf: every learner gets its bootstrap's adaptive share.
    With seed 7 that share is exactly 10 / 20 (checked on sklearn's own forest), so everyone is at 0.5, which
    is not above 0.5: nobody is adaptive, the forest is right on the 10 non-adaptive learners."""
    features, truth = _uninformative()
    X, y = np.zeros((20, 1)), truth.to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # one tree leaves some learners without an OOB score
        reference = RandomForestClassifier(1, min_samples_leaf=2, oob_score=True, random_state=7).fit(X, y)
        result = label_learners(
            features, truth, LearnerLabelConfig(rf_trees=1, cv_folds=2, seed=7, classifiers=("rf",))
        )
    assert (reference.predict_proba(X)[:, 1] == 0.5).all()
    assert (result.labels["p_adaptive"] == 0.5).all() and not result.labels["adaptive"].any()
    nobody = Scores(0.5, 0.0, [[10, 0], [10, 0]])
    assert result.cv["rf"] == nobody and result.against_truth == nobody


def test_classifiers_agree_when_both_vote_exactly_half():
    """On the constant feature the calibrated SVM also gives exactly 0.5 (a balanced Platt fit): neither calls
    anyone adaptive, so they agree on every learner; both score F1 0 and the tie goes to the forest."""
    features, truth = _uninformative()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = label_learners(features, truth, LearnerLabelConfig(rf_trees=1, cv_folds=2, seed=7))
    folds = StratifiedKFold(2, shuffle=True, random_state=7)
    svm = clone(_classifiers(LearnerLabelConfig())["svm"])
    oof = cross_val_predict(svm, np.zeros((20, 1)), truth.to_numpy(), cv=folds, method="predict_proba")[:, 1]
    assert (oof == 0.5).all()
    assert result.agreement == 1.0 and result.chosen == "rf"
    assert result.cv["svm"] == result.cv["rf"] == Scores(0.5, 0.0, [[10, 0], [10, 0]])


def test_lexical_cues_count_advanced_minus_beginner_words():
    texts = ["Advanced spreadsheets", "Spreadsheet basics", "Advanced basics", "RESEARCH METHODS", "Knitting"]
    # +1, -1, 1 - 1 = 0, +1 (case ignored), 0
    assert difficulty_from_cues(texts).tolist() == [
        "advanced",
        "beginner",
        "intermediate",
        "advanced",
        "intermediate",
    ]


LEVELS = ("beginner", "intermediate", "advanced")


def _catalogue(levels, seed: int = 0) -> np.ndarray:
    """Course vectors near the corner of their level (0 beginner, 1 intermediate, 2 advanced) in 6 dims."""
    codes = np.array([LEVELS.index(level) for level in levels])
    return np.eye(6)[codes] * 2 + np.random.default_rng(seed).normal(0, 0.3, (len(codes), 6))


def test_fill_difficulty_keeps_a_complete_source():
    difficulty = pd.Series(["advanced", "beginner"], index=[7, 9])
    filled, source, method = fill_difficulty(_catalogue(difficulty), ["a", "b"], difficulty)
    assert filled is difficulty and method == "source"
    assert source.index.tolist() == [7, 9] and source.tolist() == ["source", "source"]


def test_fill_difficulty_by_logistic_regression_with_five_courses_a_level():
    """Five labelled courses of each level (the default minimum) train the model; each hidden course lies at
    its level's corner, so that level is predicted, whatever its text cues say."""
    truth = list(np.repeat(LEVELS, 5)) + ["advanced", "beginner", "intermediate"]
    difficulty = pd.Series(truth[:15] + [None] * 3, index=np.arange(100, 118), dtype=object)
    texts = ["x"] * 15 + ["An introduction", "Advanced research", "Basics"]  # cues would say otherwise
    filled, source, method = fill_difficulty(_catalogue(truth), texts, difficulty)
    assert filled.tolist() == truth and filled.index.tolist() == list(range(100, 118))
    assert source.tolist() == ["source"] * 15 + ["derived"] * 3 and source.index.equals(difficulty.index)
    assert method == "logistic regression on the labelled courses' embeddings"
    assert difficulty.isna().sum() == 3  # the input is left as it was


def test_fill_difficulty_by_cues_below_the_minimum_or_without_every_level():
    """Hidden courses (at positions 1 and 4) get the cues of their own texts."""
    truth = ["beginner", None, "intermediate", "advanced", None] + list(np.repeat(LEVELS, 5))
    difficulty = pd.Series(truth, dtype=object)
    texts = ["x", "Advanced theory", "x", "x", "Getting started"] + ["x"] * 15
    vectors = _catalogue([t or "intermediate" for t in truth])
    expected = ["beginner", "advanced", "intermediate", "advanced", "beginner"] + list(np.repeat(LEVELS, 5))
    # six labelled courses a level, but a minimum of seven: cues decide
    filled, source, method = fill_difficulty(vectors, texts, difficulty, min_per_level=7)
    assert filled.tolist() == expected and method == "lexical level cues"
    assert source.tolist() == ["source", "derived", "source", "source", "derived"] + ["source"] * 15
    # six a level meet a minimum of six: the model decides (both hidden vectors are intermediate)
    filled, _, method = fill_difficulty(vectors, texts, difficulty, min_per_level=6)
    assert method.startswith("logistic") and filled[[1, 4]].tolist() == ["intermediate", "intermediate"]
    # no advanced course labelled, plenty of the two others: cues decide
    two = pd.Series(["beginner"] * 6 + ["intermediate"] * 6 + [None], dtype=object)
    texts = ["x"] * 12 + ["In-depth optimisation"]
    vectors = _catalogue(["beginner"] * 7 + ["intermediate"] * 6)  # the hidden course looks like a beginner's
    filled, _, method = fill_difficulty(vectors, texts, two)
    assert method == "lexical level cues" and filled.iloc[-1] == "advanced"


def _reference_oof(X, y, folds: int, seed: int) -> np.ndarray:
    model = LogisticRegression(C=10.0, max_iter=3000)
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, X, y, cv=split, method="predict_proba")[:, 1]


def test_course_labels_trained_on_the_source_difficulties_only():
    """20 courses labelled by the source (10 accessible, 10 intensive) train the classifier; 4 whose derived
    difficulty says beginner lie at the advanced corner: they are not trained on, and come out intensive.
    Labelled courses get their cross-validated probability (seeded shuffled folds), the others the model's."""
    source_levels = ["beginner"] * 10 + ["intermediate"] * 5 + ["advanced"] * 5
    vectors = _catalogue(source_levels + ["advanced"] * 4)
    difficulty = pd.Series(source_levels + ["beginner"] * 4)
    origin = pd.Series(["source"] * 20 + ["derived"] * 4)
    ids = [f"C{i}" for i in range(24)]
    result = label_courses(ids, vectors, difficulty, origin)
    labels = result.labels
    assert list(labels.columns) == [
        "course_id",
        "difficulty",
        "difficulty_source",
        "intensive",
        "p_intensive",
    ]
    assert labels["course_id"].tolist() == ids and labels["difficulty"].tolist() == difficulty.tolist()
    assert labels["difficulty_source"].tolist() == origin.tolist()
    assert labels["intensive"].tolist() == [False] * 10 + [True] * 14
    y = np.arange(20) >= 10
    np.testing.assert_allclose(labels["p_intensive"][:20], _reference_oof(vectors[:20], y, 5, 0), rtol=1e-9)
    model = LogisticRegression(C=10.0, max_iter=3000).fit(vectors[:20], y)
    np.testing.assert_allclose(labels["p_intensive"][20:], model.predict_proba(vectors[20:])[:, 1], rtol=1e-9)
    assert result.labelled == 20 and result.fallback is None and result.model is not None
    np.testing.assert_allclose(result.model.predict_proba(vectors)[:, 1], model.predict_proba(vectors)[:, 1])
    assert result.cv["logreg"] == Scores(1.0, 1.0, [[10, 0], [0, 10]])
    # half the labelled courses intensive: the majority baseline says intensive for all
    assert result.cv["majority"] == Scores(0.5, 2 / 3, [[0, 10], [0, 10]])
    seeded = label_courses(ids, vectors, difficulty, origin, seed=3).labels["p_intensive"][:20]
    np.testing.assert_allclose(seeded, _reference_oof(vectors[:20], y, 5, 3), rtol=1e-9)
    assert not np.allclose(seeded, labels["p_intensive"][:20], rtol=1e-9, atol=0)


def test_course_labels_without_source_labels_train_on_the_derived_ones():
    """No course labelled by the source: the 12 with a derived difficulty train (6 folds asked, 6 a class);
    the one without a difficulty is only predicted."""
    levels = ["beginner"] * 6 + ["advanced"] * 6
    vectors = _catalogue(levels + ["advanced"])
    difficulty = pd.Series(levels + [None], dtype=object)
    result = label_courses(range(13), vectors, difficulty, pd.Series(["derived"] * 13), folds=6)
    assert result.labelled == 12 and result.fallback is None
    y = np.arange(12) >= 6
    np.testing.assert_allclose(
        result.labels["p_intensive"][:12], _reference_oof(vectors[:12], y, 6, 0), rtol=1e-9
    )
    assert result.labels["intensive"].tolist() == [False] * 6 + [True] * 7


def test_five_courses_a_class_are_enough_for_the_default_five_folds():
    levels = ["beginner"] * 5 + ["advanced"] * 6
    result = label_courses(range(11), _catalogue(levels), pd.Series(levels), pd.Series(["source"] * 11))
    assert result.fallback is None and set(result.cv) == {"logreg", "majority"}


def test_course_labels_of_one_class_follow_the_difficulty():
    levels = ["beginner"] * 8
    difficulty, origin = pd.Series(levels), pd.Series(["source"] * 8)
    result = label_courses(list("abcdefgh"), _catalogue(levels), difficulty, origin)
    assert result.fallback == (
        "no classifier trained: too few courses per class to cross-validate (accessible 8, intensive 0); "
        "labels follow the difficulty"
    )
    assert result.cv == {} and result.labelled == 8 and result.model is None
    expected = pd.DataFrame(
        {
            "course_id": list("abcdefgh"),
            "difficulty": levels,
            "difficulty_source": ["source"] * 8,
            "intensive": [False] * 8,
            "p_intensive": [0.0] * 8,
        }
    )
    pd.testing.assert_frame_equal(result.labels, expected)
