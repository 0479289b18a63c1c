"""Real data without a learnable signal still runs end to end: the stage that cannot learn says why and hands on
a neutral output (here: learner labels with p_adaptive 0.5 for everyone)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance

from .test_cli import cli

TOPICS = ("python", "databases", "machine learning", "cloud computing", "statistics", "web development", "containers")
LEVELS = ("an introduction to", "the basics of", "applied", "advanced", "in-depth")


def _catalogue(courses: int) -> pd.DataFrame:
    return pd.DataFrame([(f"C{i:03d}", f"{LEVELS[i % len(LEVELS)]} {TOPICS[i % len(TOPICS)]}".capitalize(),
                          f"hands-on labs and quizzes: {LEVELS[i % len(LEVELS)]} {TOPICS[i % len(TOPICS)]}")
                         for i in range(courses)], columns=["id", "title", "text"])


def _enrolments(learners: int, courses: int, seed: int) -> pd.DataFrame:
    """4-9 distinct courses per learner, three times likelier from the learner's favourite topic."""
    rng = np.random.default_rng(seed)
    rows = []
    for learner in range(learners):
        weights = np.where(np.arange(courses) % len(TOPICS) == rng.integers(len(TOPICS)), 3.0, 1.0)
        taken = rng.choice(courses, rng.integers(4, 10), replace=False, p=weights / weights.sum())
        rows += [(f"U{learner:04d}", f"C{c:03d}") for c in taken]
    return pd.DataFrame(rows, columns=["user", "item"])


def _evaluate(tmp_path: Path, *source: str) -> tuple[dict, dict, tuple]:
    """(report.json, learner_labels' Dagster metadata, learner_labels summary) of ``coursepilot evaluate``."""
    out = tmp_path / "out"
    home = out / "home"  # evaluate's default project home
    done = cli("evaluate", *source, "--out", str(out), check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(AssetKey("learner_labels"))
    metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        labels = con.execute("SELECT count(*), count(adaptive), min(p_adaptive), max(p_adaptive), "
                             "count(training_label), bool_or(training_label) FROM learner_labels").fetchone()
    return json.loads((out / "report.json").read_text()), metadata, labels


def _assert_ranked(report: dict, source_format: str):
    assert report["source"]["format"] == source_format
    for model in ("popularity", "als", "hybrid"):
        assert 0 < report["models"][model]["ndcg@10"] <= 1, model


@pytest.mark.slow
def test_ibm_enrolments_only_fall_back_to_neutral_learner_labels(tmp_path):
    """IBM's ratings.csv: 2.0 audited, 3.0 completed (about 95%): nobody exceeds the median completion rate."""
    data = tmp_path / "ibm"
    data.mkdir()
    _catalogue(40).rename(columns={"id": "COURSE_ID", "title": "TITLE", "text": "DESCRIPTION"}).to_csv(
        data / "course_processed.csv", index=False)
    enrolments = _enrolments(200, 40, seed=0)
    completed = np.random.default_rng(1).random(len(enrolments)) < 0.95
    enrolments.assign(rating=np.where(completed, 3.0, 2.0)).to_csv(data / "ratings.csv", index=False)

    report, metadata, labels = _evaluate(tmp_path, "--format", "ibm", "--data", str(data))
    _assert_ranked(report, "ibm")
    assert "training label non-adaptive" in metadata["fallback"] and "chosen_model" not in metadata
    learners, adaptive, low, high, with_rule_label, any_adaptive = labels
    assert learners > 150 and adaptive == 0 and low == high == 0.5
    assert with_rule_label == learners and not any_adaptive  # the rule's single class, kept as the reason's evidence


@pytest.mark.slow
def test_generic_ratings_only_fall_back_to_neutral_learner_labels(tmp_path):
    """user, item, rating, time and nothing else: no grade, completion or watch share for the threshold rule."""
    data = tmp_path / "generic"
    data.mkdir()
    _catalogue(40).to_csv(data / "courses.csv", index=False)
    enrolments = _enrolments(200, 40, seed=2)
    rng = np.random.default_rng(3)
    hours = pd.to_timedelta(rng.integers(0, 12 * 7 * 24, len(enrolments)), unit="h")
    enrolments.assign(rating=rng.integers(1, 6, len(enrolments)), time=pd.Timestamp("2024-01-01") + hours).to_csv(
        data / "events.csv", index=False)
    (data / "mapping.yaml").write_text(
        "rating_scale: [1, 5]\n"
        "courses: {file: courses.csv, columns: {course_id: id, title: title, description: text}}\n"
        "interactions: {file: events.csv, columns: {learner_id: user, course_id: item, rating: rating, ts: time}}\n")

    report, metadata, labels = _evaluate(tmp_path, "--format", "generic", "--data", str(data / "mapping.yaml"))
    _assert_ranked(report, "generic")
    assert metadata["label_source"] == "none" and "no performance feature" in metadata["fallback"]
    learners, adaptive, low, high, with_rule_label, _ = labels
    assert learners > 150 and adaptive == 0 and low == high == 0.5 and with_rule_label == 0
