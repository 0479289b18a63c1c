"""The evaluation report on a small synthetic warehouse: keys, determinism, isolation, files."""

from __future__ import annotations

import json

import pytest

from coursepilot.evaluation.protocol import evaluate, held_out
from coursepilot.evaluation.report import (
    BASELINES,
    CALIBRATED,
    CI_METRICS,
    ReportConfig,
    evaluate_all,
    flat_keys,
    isolated_copy,
    write_report,
)
from coursepilot.evaluation.significance import bootstrap_ci, paired_ttest
from coursepilot.models.base import load_train_data
from coursepilot.models.catalogue import MODELS as CATALOGUE
from coursepilot.models.simple import Popularity
from coursepilot.splits import SplitConfig, build_split
from tests.recommender_data import SCALE

MODELS = {spec.name for spec in CATALOGUE if spec.report} | {
    "hybrid",
    "hybrid_eq6",
    "hybrid_eq6_level",
    "hybrid_tfidf",
}


@pytest.fixture(scope="module")
def report(warehouse):
    return evaluate_all(warehouse, ReportConfig(seeds=(0, 1), neural_seeds=0), log=lambda _: None)


def test_every_model_has_every_key(report):
    assert set(report["models"]) == MODELS
    keys = flat_keys(report)
    for name in MODELS:
        for metric in (
            "precision@5",
            "recall@5",
            "f1@5",
            "accuracy@5",
            "precision@10",
            "recall@10",
            "ndcg@10",
            "map@10",
            "hit@10",
            "mrr",
            "coverage",
        ):
            value = keys[f"models.{name}.{metric}"]
            assert 0.0 <= value <= 1.0, (name, metric)
            assert f"models.{name}.{metric}_std" in keys
    assert set(report["cold_start"]) == {"learners", "courses"}
    assert set(report["significance"]["vs"]) == set(BASELINES)
    validation = report["validation"]
    assert validation["notes"]["skipped"] == {}  # the synthetic source has everything every model needs
    fusion = validation["fusion"]
    # never worse than its best part
    assert fusion["valid_ndcg@10"] >= max(fusion["components_alone"].values())
    assert set(fusion["components_alone"]) == {s.name for s in CATALOGUE if s.fusion}
    per_learner = report["per_learner"]
    assert (
        set(per_learner["model"]) == MODELS
        and len(per_learner) == len(MODELS) * report["config"]["test_learners_per_seed"][0]
    )
    hybrid = per_learner[per_learner["model"] == "hybrid"]["ndcg@10"].mean()
    # seed 0 vs the mean over seeds
    assert hybrid == pytest.approx(report["models"]["hybrid"]["ndcg@10"], abs=0.02)
    assert set(report["ratings"]) == {"global_mean", "biases", "user_knn_rating"} | {
        f"{m}_calibrated" for m in CALIBRATED
    }
    assert all(0 < e["mae"] < 4 and e["mae"] ** 2 <= e["mse"] for e in report["ratings"].values())
    assert keys["ratings.biases.mae"] < keys["ratings.global_mean.mae"]


def test_the_numbers_are_the_models_scored_on_the_seed_split_with_intervals_around_them(report, warehouse):
    mem = isolated_copy(warehouse)
    build_split(mem, SplitConfig(seed=0))
    data = load_train_data(mem, SCALE)
    expected = evaluate(Popularity().fit(data), held_out(mem, data, "test", SCALE), ks=(10,))["ndcg@10"]
    per_learner = report["per_learner"]
    assert per_learner[per_learner["model"] == "popularity"]["ndcg@10"].mean() == pytest.approx(expected)
    intervals = report["bootstrap_ci"]["models"]
    assert set(intervals) == MODELS and set(intervals["hybrid"]) == set(CI_METRICS)
    for name in MODELS:
        seed0 = per_learner[per_learner["model"] == name]["ndcg@10"].mean()
        low, high = intervals[name]["ndcg@10"]
        assert low < seed0 < high and high - low < 0.1
        # every model from the same resamples: its interval is the one it gets bootstrapped alone
        alone = bootstrap_ci(per_learner[per_learner["model"] == name][["ndcg@10"]].to_numpy(), seed=0)
        assert [low, high] == pytest.approx([alone[0][0], alone[1][0]])


def test_same_seed_same_numbers_and_the_warehouse_is_untouched(report, warehouse):
    before = warehouse.execute("SELECT split, count(*) FROM split GROUP BY 1 ORDER BY 1").fetchall()
    again = evaluate_all(warehouse, ReportConfig(seeds=(0, 1), neural_seeds=0), log=lambda _: None)
    assert flat_keys(again) == pytest.approx(flat_keys(report))
    assert warehouse.execute("SELECT split, count(*) FROM split GROUP BY 1 ORDER BY 1").fetchall() == before


def test_report_files(report, tmp_path):
    peers = {"cf_peers": paired_ttest([0.5, 0.4, 0.3], [0.1, 0.2, 0.2])}
    files = write_report({**report, "significance": {**report["significance"], "peers_vs": peers}}, tmp_path)
    assert {f.name for f in files} >= {"report.json", "report.md", "ndcg_at_k.png", "per_learner.parquet"}
    assert json.loads((tmp_path / "report.json").read_text())["models"]["als"]["ndcg@10"] == pytest.approx(
        report["models"]["als"]["ndcg@10"]
    )
    text = (tmp_path / "report.md").read_text()
    assert (
        "## Models" in text
        and "hybrid_eq6" in text
        and "## The shipped hybrid" in text
        and "## Definitions" in text
    )
    assert (
        "## Bootstrap 95% intervals" in text and "## Paired t-tests (hybrid_peers vs peer baselines" in text
    )
    assert "Validation carve: each learner's latest rows" in text
    assert (tmp_path / "ndcg_at_k.png").read_bytes()[:4] == b"\x89PNG"
