"""Learner features (hand-computed), learner and course classifiers against synthetic ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coursepilot.content import course_texts
from coursepilot.embeddings import embed_texts
from coursepilot.features import FeatureTable, learner_features, load_features, min_max, store_frame
from coursepilot.ingest import clean, write_raw
from coursepilot.labels import (
    LearnerLabelConfig,
    _fit_out_of_sample,
    difficulty_from_cues,
    fill_difficulty,
    label_courses,
    label_learners,
    neutral_labels,
    threshold_labels,
)
from coursepilot.sources import load_source
from coursepilot.splits import SplitConfig, build_split
from coursepilot.warehouse import replace_tables

from .test_validation import make

# margins the classifiers must beat the majority class by, on synthetic ground truth
LEARNER_ACCURACY_MARGIN = 0.15
COURSE_ACCURACY_MARGIN = 0.15


def test_min_max_is_equation_one():
    frame = pd.DataFrame({"a": [2.0, 4.0, 6.0, np.nan], "flat": [3.0, 3.0, 3.0, 3.0]})
    out = min_max(frame)
    assert out["a"].tolist()[:3] == [0.0, 0.5, 1.0] and np.isnan(out["a"].iloc[3])
    assert out["flat"].tolist() == [0.0] * 4


def test_features_hand_computed_and_missing_columns_left_out(tmp_path, con):
    events = (
        "user,item,stars,seen,time\nu1,c1,4,50,2024-01-01\nu1,c2,2,100,2024-01-09\nu1,c3,5,100,2024-01-10\n"
        "u2,c1,5,100,2024-01-02\nu2,c2,1,20,2024-01-03\nu2,c3,3,40,2024-01-04\n"
    )
    courses = "id,name,level,minutes\nc1,Intro,beginner,30\nc2,Deep,advanced,90\nc3,Mid,intermediate,60\n"
    write_raw(con, load_source("generic", make(tmp_path, courses=courses, events=events)))
    clean(con)
    build_split(con, SplitConfig(test_share=0.34, cold_learner_share=0, cold_course_share=0))
    table = learner_features(con, (1.0, 5.0))
    raw = table.raw.set_index("learner_id")
    # training = the first two interactions of each learner by time
    assert raw.loc["u1", "courses_taken"] == 2
    assert raw.loc["u1", "avg_watch_pct"] == pytest.approx(75.0)
    assert raw.loc["u1", "avg_rating"] == pytest.approx(((4 - 1) / 4 + (2 - 1) / 4) / 2)
    assert raw.loc["u1", "active_weeks"] == 2 and raw.loc["u2", "active_weeks"] == 1
    assert raw.loc["u2", "engaged_minutes"] == pytest.approx(30 * 1.0 + 90 * 0.2)
    assert set(table.missing) == {"avg_grade", "courses_completed", "completion_rate", "total_clicks"}
    assert table.performance == ["avg_watch_pct"]
    replace_tables(con, {"learner_features": store_frame(table)})
    again = load_features(con)
    assert again.used == table.used and np.allclose(
        again.normalised[table.used], table.normalised[table.used], equal_nan=True
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    import duckdb

    from coursepilot.synthetic import SIZES, write_dataset

    folder = write_dataset(SIZES["XS"], tmp_path_factory.mktemp("labels") / "xs")
    con = duckdb.connect()
    write_raw(con, load_source("synthetic", folder))
    clean(con)
    build_split(con)
    yield con
    con.close()


def test_learner_classifiers_beat_majority_on_ground_truth(synthetic):
    features = learner_features(synthetic, (1.0, 5.0))
    truth = (
        synthetic.execute("SELECT learner_id, adaptive FROM truth_learners")
        .df()
        .set_index("learner_id")["adaptive"]
    )
    result = label_learners(features, truth, LearnerLabelConfig(rf_trees=100))
    majority = result.cv["majority"].accuracy
    for name in ("rf", "svm"):
        assert result.cv[name].accuracy > majority + LEARNER_ACCURACY_MARGIN, (
            name,
            result.cv[name],
            majority,
        )
    assert result.against_truth.f1 > 0.75
    assert 0.8 < result.agreement <= 1.0
    assert result.labels["p_adaptive"].between(0, 1).all() and len(result.labels) == len(features.raw)
    # the nightly keeps the chosen classifier: only it is scored and fitted, with the same labels
    kept = label_learners(features, truth, LearnerLabelConfig(rf_trees=100, classifiers=(result.chosen,)))
    assert (
        set(kept.models) == {result.chosen}
        and set(kept.cv) == {result.chosen, "majority"}
        and kept.agreement is None
    )
    np.testing.assert_allclose(kept.labels["p_adaptive"], result.labels["p_adaptive"])
    with pytest.raises(ValueError, match="classifiers must be among"):
        label_learners(features, truth, LearnerLabelConfig(classifiers=("knn",)))


def test_forest_scores_out_of_bag_not_in_sample():
    """On labels independent of the features, the forest's out-of-bag probabilities guess (about half right),
    while its in-sample ones have learnt the noise; a row drawn by every tree gets the whole forest's
    probability."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(800, 4)), rng.random(800) < 0.5
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    forest, proba = _fit_out_of_sample(
        RandomForestClassifier(100, min_samples_leaf=2, oob_score=True, random_state=0), X, y, folds
    )
    assert np.mean((forest.predict_proba(X)[:, 1] > 0.5) == y) > 0.9
    assert 0.4 < np.mean((proba > 0.5) == y) < 0.6
    with pytest.warns(UserWarning, match="OOB"):
        forest, proba = _fit_out_of_sample(
            RandomForestClassifier(2, oob_score=True, random_state=0), X, y, folds
        )
    never_out = forest.oob_decision_function_.sum(axis=1) == 0
    assert never_out.any() and (~never_out).any()
    np.testing.assert_allclose(proba[never_out], forest.predict_proba(X[never_out])[:, 1])
    np.testing.assert_allclose(proba[~never_out], forest.oob_decision_function_[~never_out, 1])


def test_threshold_rule_labels_when_no_ground_truth(synthetic):
    features = learner_features(synthetic, (1.0, 5.0))
    rule, threshold = threshold_labels(features, 0.5)
    assert 0.45 < rule.mean() < 0.55 and 0 < threshold < 1
    result = label_learners(features, None, LearnerLabelConfig(rf_trees=50))
    assert result.label_source.startswith("threshold rule") and result.threshold == pytest.approx(threshold)
    assert result.cv[result.chosen].accuracy > 0.85  # the rule is a function of the features: learnable


def test_threshold_rule_calls_the_better_performers_adaptive():
    """The rule's direction: a performance score above the cohort's quantile is adaptive, at or below it is
    not."""
    grades = pd.DataFrame({"learner_id": list("abcde"), "avg_grade": [0.9, 0.1, 0.5, 0.7, 0.3]})
    features = FeatureTable(grades, grades, ["avg_grade"], {})
    assert features.performance == ["avg_grade"]
    rule, threshold = threshold_labels(features, 0.5)
    assert threshold == pytest.approx(0.5)
    assert list(rule) == [True, False, False, True, False]


def test_course_classifier_beats_majority_on_embeddings(synthetic):
    courses = synthetic.execute("SELECT * FROM courses ORDER BY course_id").df()
    vectors = embed_texts(course_texts(courses))
    source = pd.Series(["source"] * len(courses))
    result = label_courses(courses["course_id"], vectors, courses["difficulty"], source)
    assert result.cv["logreg"].accuracy > result.cv["majority"].accuracy + COURSE_ACCURACY_MARGIN
    truth = synthetic.execute(
        "SELECT course_id, cognitively_intensive FROM truth_courses ORDER BY course_id"
    ).df()
    assert (result.labels["intensive"].to_numpy() == truth["cognitively_intensive"].to_numpy()).mean() > 0.75


def test_difficulty_filled_from_labelled_courses_or_cues(synthetic):
    courses = synthetic.execute("SELECT * FROM courses ORDER BY course_id").df()
    texts = course_texts(courses)
    vectors = embed_texts(texts)
    partial = courses["difficulty"].where(np.arange(len(courses)) % 2 == 0)
    filled, source, method = fill_difficulty(vectors, texts, partial)
    assert method.startswith("logistic regression") and filled.notna().all()
    hidden = source == "derived"
    assert (filled[hidden] == courses["difficulty"][hidden]).mean() > 0.6  # chance is about 0.4
    filled, _, method = fill_difficulty(vectors, texts, pd.Series([None] * len(courses), dtype=object))
    assert method == "lexical level cues" and set(filled) <= {"beginner", "intermediate", "advanced"}


def test_lexical_cues():
    assert list(
        difficulty_from_cues(["An introduction to the basics", "Advanced, in-depth theory", "Spreadsheets"])
    ) == ["beginner", "advanced", "intermediate"]


def _features(**columns) -> FeatureTable:
    """A feature table of the given raw columns (learner ids L000...), normalised by equation (1)."""
    raw = pd.DataFrame(columns)
    raw.insert(0, "learner_id", [f"L{i:03d}" for i in range(len(raw))])
    names = list(columns)
    return FeatureTable(raw, pd.concat([raw[["learner_id"]], min_max(raw[names])], axis=1), names, {})


def _assert_neutral(result, learners: int):
    labels = result.labels
    assert result.chosen is None and not result.models and not result.cv
    assert list(labels.columns) == ["learner_id", "adaptive", "p_adaptive", "training_label"]
    assert len(labels) == learners
    assert labels["adaptive"].isna().all() and (labels["p_adaptive"] == 0.5).all()


def test_no_performance_feature_gives_neutral_labels():
    rng = np.random.default_rng(0)
    features = _features(courses_taken=rng.integers(1, 9, 120).astype(float), avg_rating=rng.random(120))
    result = label_learners(features, None, LearnerLabelConfig(rf_trees=20))
    _assert_neutral(result, 120)
    assert result.label_source == "none" and "no performance feature" in result.fallback
    assert result.labels["training_label"].isna().all()
    with pytest.raises(ValueError, match="no performance feature"):
        threshold_labels(features, 0.5)


def test_enrollment_only_completion_gives_one_class_and_neutral_labels():
    """IBM-like enrolments: most learners complete everything, so nobody exceeds the median completion
    rate."""
    rng = np.random.default_rng(1)
    rate = np.where(rng.random(200) < 0.8, 1.0, rng.choice([0.5, 2 / 3, 0.75], 200))
    result = label_learners(
        _features(courses_taken=rng.integers(2, 9, 200).astype(float), completion_rate=rate),
        None,
        LearnerLabelConfig(rf_trees=20),
    )
    _assert_neutral(result, 200)
    assert result.threshold == 1.0 and result.label_source.startswith("threshold rule")
    assert "every one of the 200 learners has the training label non-adaptive" in result.fallback
    assert not result.labels["training_label"].any() and result.labels["training_label"].notna().all()


def test_a_class_smaller_than_the_folds_falls_back_and_one_as_large_trains():
    rng = np.random.default_rng(2)
    features = _features(courses_taken=rng.integers(1, 9, 150).astype(float), avg_grade=rng.random(150) * 100)
    ids = features.raw["learner_id"]
    config = LearnerLabelConfig(rf_trees=20, cv_folds=5)
    few = pd.Series(np.arange(150) < 4, index=ids)
    result = label_learners(features, few, config)
    _assert_neutral(result, 150)
    assert "too few learners" in result.fallback and "adaptive 4" in result.fallback
    enough = label_learners(features, pd.Series(np.arange(150) < 5, index=ids), config)
    assert enough.fallback is None and enough.chosen in ("rf", "svm")
    assert enough.labels["p_adaptive"].between(0, 1).all()


def test_subsamples_keep_enough_of_a_rare_class_to_cross_validate():
    """With 6 adaptive learners in 400, a proportional 40-row SVM sample would hold one; it keeps cv_folds of
    them."""
    rng = np.random.default_rng(3)
    features = _features(avg_grade=rng.random(400) * 100, courses_taken=rng.integers(1, 9, 400).astype(float))
    truth = pd.Series(np.arange(400) < 6, index=features.raw["learner_id"])
    result = label_learners(
        features, truth, LearnerLabelConfig(rf_trees=20, rf_max_train=100, svm_max_train=40)
    )
    assert result.fallback is None
    assert sum(result.cv["svm"].confusion[1]) == 5 and sum(result.cv["rf"].confusion[1]) == 5
    assert len(result.labels) == 400 and result.labels["p_adaptive"].between(0, 1).all()


def test_neutral_labels_keep_the_table_schema(synthetic, con):
    features = learner_features(synthetic, (1.0, 5.0))
    trained = label_learners(features, None, LearnerLabelConfig(rf_trees=20, classifiers=("rf",))).labels
    tables = {
        "trained": trained,
        "neutral": neutral_labels(trained["learner_id"], trained["training_label"]),
        "empty": neutral_labels([]),
    }
    replace_tables(con, tables)
    types = {
        name: con.execute(f"DESCRIBE {name}").df()[["column_name", "column_type"]].values.tolist()
        for name in tables
    }
    assert types["neutral"] == types["trained"] == types["empty"]
    summary = con.execute("SELECT count(adaptive), min(p_adaptive), max(p_adaptive) FROM neutral").fetchone()
    assert summary == (0, 0.5, 0.5)


def test_course_labels_follow_a_single_class_difficulty_without_a_classifier():
    vectors = np.random.default_rng(4).normal(size=(30, 8))
    difficulty = pd.Series(["advanced"] * 28 + ["beginner"] * 2)
    result = label_courses([f"C{i}" for i in range(30)], vectors, difficulty, pd.Series(["source"] * 30))
    assert result.model is None and not result.cv and "accessible 2, intensive 28" in result.fallback
    assert result.labels["intensive"].tolist() == [True] * 28 + [False] * 2
    assert result.labels["p_intensive"].tolist() == [1.0] * 28 + [0.0] * 2
