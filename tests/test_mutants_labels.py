"""Learner labels on tiny hand-made feature tables (kills mutants of coursepilot/labels.py).

Every case is small enough to train on in well under a second: a few dozen learners, a few trees.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
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
    label_learners,
    neutral_labels,
    performance_score,
    threshold_labels,
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
