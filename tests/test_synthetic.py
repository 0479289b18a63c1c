"""The synthetic generator: deterministic, the requested shape, and the latent signals it promises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coursepilot.synthetic import SIZES, SyntheticSpec, generate
from coursepilot.synthetic.vocabulary import LEVELS

SPEC = SyntheticSpec(learners=3000, courses=200, interactions=60_000, seed=7)


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return {name: table.to_pandas() for name, table in generate(SPEC).items()}


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = generate(SIZES["XS"]), generate(SIZES["XS"]), generate(SyntheticSpec(800, 80, 12_000, seed=1))
    for name in a:
        assert a[name].equals(b[name]), name
    assert not a["interactions"].equals(c["interactions"])


def test_shape_ids_and_columns(data):
    assert len(data["learners"]) == SPEC.learners and len(data["courses"]) == SPEC.courses
    inter = data["interactions"]
    assert len(inter) == SPEC.interactions
    assert not inter.duplicated(["learner_id", "course_id"]).any()
    assert set(inter["learner_id"].astype(str)) <= set(data["learners"]["learner_id"])
    assert set(inter["course_id"].astype(str)) <= set(data["courses"]["course_id"])
    assert inter["watch_pct"].between(0, 100).all()
    assert inter["rating"].dropna().between(1, 5).all() and inter["rating"].isna().any()
    assert inter["ts"].max() - inter["ts"].min() > pd.Timedelta(weeks=SPEC.weeks - 3)
    assert set(data["courses"]["difficulty"]) == set(LEVELS)


def test_descriptions_are_english_text_of_40_to_120_words(data):
    words = data["courses"]["description"].str.split().str.len()
    assert words.between(40, 120).all()
    beginner = data["courses"].query("difficulty == 'beginner'")["description"]
    advanced = data["courses"].query("difficulty == 'advanced'")["description"]
    assert beginner.str.contains("beginner|basics|no prior experience|first look", case=False).mean() > 0.9
    assert advanced.str.contains("advanced|expert|experienced|demanding|rigorous", case=False).mean() > 0.9


def _joined(data):
    inter = data["interactions"].astype({"learner_id": str, "course_id": str})
    truth = data["truth_learners"].astype({"primary_theme": str, "secondary_theme": str, "skill_level": str})
    return (
        inter.merge(truth, on="learner_id")
        .merge(data["courses"], on="course_id")
        .merge(data["truth_courses"], on="course_id", suffixes=("_l", "_c"))
    )


def test_theme_affinity_taste_and_popularity_carry_signal(data):
    joined = _joined(data)
    in_theme = (
        (joined["theme"] == joined["primary_theme"]) | (joined["theme"] == joined["secondary_theme"])
    ).mean()
    assert in_theme > 0.5  # chance is 2 of 10 themes
    same_taste = (joined["taste_cluster_l"] == joined["taste_cluster_c"]).mean()
    assert same_taste > 0.25  # chance is 1 of 8 tastes
    counts = joined["course_id"].value_counts()
    # top 10% of courses; uniform would give 0.1
    assert counts.iloc[: len(counts) // 10].sum() / counts.sum() > 0.2


def test_level_match_and_pace(data):
    joined = _joined(data)
    level = joined["difficulty"].map({v: i for i, v in enumerate(LEVELS)})
    skill = joined["skill_level"].map({v: i for i, v in enumerate(LEVELS)})
    assert (np.abs(level - skill) == 0).mean() > 0.45  # chance is about 0.38
    late = joined["ts"] > joined["ts"].quantile(0.5)
    for adaptive, rise in ((True, 0.3), (False, 0.0)):
        rows = joined["adaptive"] == adaptive
        gain = level[rows & late].mean() - level[rows & ~late].mean()
        assert gain > rise if adaptive else gain < 0.3
    by_pace = joined.groupby("adaptive")["completed"].mean()
    assert by_pace[True] > by_pace[False] + 0.1
