"""Learner labels kept between full runs (:mod:`coursepilot.kept_labels`): only learners whose feature inputs
changed are labelled, by the kept classifier with the kept normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coursepilot.changes import inputs_table
from coursepilot.features import learner_features, store_frame
from coursepilot.kept_labels import TABLE, KeptClassifier, label_changes, relabelled
from coursepilot.labels import LearnerLabelConfig, label_learners
from coursepilot.warehouse import Merge, replace_tables

from .test_incremental import SCALE, T0, _warehouse

CONFIG = LearnerLabelConfig(rf_trees=30, cv_folds=3, classifiers=("rf",))
SCOPE = "scale (1.0, 5.0) settings of the test"


def _features(con):
    """The features as the ``learner_features`` asset computes and stores them."""
    features = learner_features(con, SCALE)
    replace_tables(con, {"learner_features": store_frame(features)})
    return features


def _fit(con) -> KeptClassifier:
    """The full path: fit, then store the labels and the fingerprints under the fit's key."""
    features = _features(con)
    result = label_learners(features, None, CONFIG)
    kept = KeptClassifier.of(result, features)
    replace_tables(
        con, {TABLE: result.labels, inputs_table(TABLE): label_changes(con, kept, SCOPE, False).fingerprints}
    )
    return kept


def _labels(con) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {TABLE} ORDER BY learner_id").df()


def _interaction(con, learner: str, course: str, watch: float = 90.0) -> None:
    con.execute("INSERT INTO interactions VALUES (?, ?, 4.0, ?, ?)", [learner, course, watch, T0])
    con.execute("INSERT INTO split VALUES (?, ?, 4.0, ?, ?, 'train')", [learner, course, watch, T0])


def test_only_changed_and_new_learners_are_labelled_with_the_kept_classifier_and_bounds():
    con = _warehouse()
    kept = _fit(con)
    before = _labels(con)
    # u05 takes one more course; u10 leaves; u99 is new and took every course, more than anyone
    taken = set(con.execute("SELECT course_id FROM interactions WHERE learner_id = 'u05'").df()["course_id"])
    _interaction(con, "u05", next(f"c{c:02d}" for c in range(12) if f"c{c:02d}" not in taken))
    con.execute("DELETE FROM interactions WHERE learner_id = 'u10'")
    con.execute("DELETE FROM split WHERE learner_id = 'u10'")
    for course in range(12):
        _interaction(con, "u99", f"c{course:02d}", watch=100.0)
    features = _features(con)  # everyone's normalised values move with the new maximum; the raw ones do not
    changes = label_changes(con, kept, SCOPE)
    assert not changes.everyone and set(changes.changed) == {"u05", "u99"} and changes.removed == 1
    fresh, stored = relabelled(con, features, kept, changes, None)
    merge = Merge(fresh, changes.kept_ids())
    replace_tables(con, {inputs_table(TABLE): changes.fingerprints}, {TABLE: merge})
    after = _labels(con).set_index("learner_id")
    others = before[~before["learner_id"].isin(["u05", "u10"])].set_index("learner_id")
    pd.testing.assert_frame_equal(after.drop(["u05", "u99"]), others)
    assert len(stored) == 28 and "u10" not in after.index
    # u99's 12 courses against the kept bounds: above the kept maximum, so above 1
    at = kept.features.index("courses_taken")
    x = kept.normalised(features.raw.set_index("learner_id").loc[["u99"]])
    assert x[0, at] == pytest.approx((12 - kept.low[at]) / (kept.high[at] - kept.low[at])) and x[0, at] > 1
    rows = features.raw.set_index("learner_id").loc[["u05", "u99"]]
    expected = kept.model.predict_proba(kept.normalised(rows))[:, 1]
    np.testing.assert_allclose(after.loc[["u05", "u99"], "p_adaptive"], expected)
    # the rule with the kept threshold: the mean of the performance features on the kept scale
    watch = kept.features.index("avg_watch_pct")
    scored = kept.normalised(rows)[:, watch]
    assert list(after.loc[["u05", "u99"], "training_label"]) == list(scored > kept.threshold)


def test_the_kept_classifier_round_trips_and_a_new_fit_or_no_fit_relabels_everyone(tmp_path):
    con = _warehouse(seed=1)
    kept = _fit(con)
    kept.save(tmp_path)
    back = KeptClassifier.load(tmp_path)
    assert KeptClassifier.load(tmp_path / "nothing") is None
    fields = {k: v for k, v in vars(kept).items() if k != "model"}
    assert {k: v for k, v in vars(back).items() if k != "model"} == fields
    X = kept.normalised(con.execute("SELECT * FROM learner_features").df())
    # the forest sums its trees on two threads: equal up to the order of the sum
    np.testing.assert_allclose(back.model.predict_proba(X), kept.model.predict_proba(X), rtol=1e-12)
    assert len(label_changes(con, kept, SCOPE).changed) == 0
    refit = _fit(con)
    assert refit.key != kept.key
    assert label_changes(con, kept, SCOPE).reason == "every learner's inputs changed"
    # another rating scale or other label settings relabel everyone
    assert label_changes(con, refit, "scale (0.0, 1.0) settings of the test").everyone
    # no classifier fitted (a fallback) leaves fingerprints no kept classifier matches
    replace_tables(con, {inputs_table(TABLE): label_changes(con, None, SCOPE, False).fingerprints})
    assert label_changes(con, refit, SCOPE).everyone


def test_features_stored_without_their_inputs_fingerprint_relabel_everyone():
    con = _warehouse(seed=2)
    kept = _fit(con)
    assert len(label_changes(con, kept, SCOPE).changed) == 0
    con.execute("ALTER TABLE learner_features DROP COLUMN inputs_fp")  # as code before the column wrote them
    changes = label_changes(con, kept, SCOPE)
    assert changes.reason == "every learner's inputs changed" and len(changes.changed) == 30


def test_kept_bounds_by_hand_a_constant_feature_maps_to_zero_and_a_missing_value_stays_missing():
    kept = KeptClassifier(None, "rf", ["a", "b"], [0.0, 1.0], [0.0, 3.0], 0.5, "key")
    X = kept.normalised(pd.DataFrame({"a": [7.0, 0.0], "b": [np.nan, 2.0]}))
    np.testing.assert_array_equal(X, [[0.0, np.nan], [0.0, 0.5]])


def test_ground_truth_is_the_training_label_of_a_relabelled_learner():
    con = _warehouse(seed=3)
    truth = pd.DataFrame(
        {"learner_id": [f"u{u:02d}" for u in range(30)], "adaptive": [u % 2 == 0 for u in range(30)]}
    )
    con.register("truth", truth)
    con.execute("CREATE TABLE truth_learners AS SELECT * FROM truth")
    kept = _fit(con)
    con.execute("UPDATE truth_learners SET adaptive = NOT adaptive WHERE learner_id = 'u04'")
    changes = label_changes(con, kept, SCOPE)
    assert list(changes.changed) == ["u04"]  # the ground truth is an input too
    fresh, _ = relabelled(con, _features(con), kept, changes, truth.set_index("learner_id")["adaptive"])
    assert list(fresh["training_label"]) == [True]
    with pytest.raises(ValueError, match="ground truth is missing for 1 learners"):
        relabelled(con, _features(con), kept, changes, truth.set_index("learner_id")["adaptive"].drop("u04"))
