"""The evaluation report on a small synthetic warehouse: keys, determinism, isolation, files."""

from __future__ import annotations

import json

import pytest

from coursepilot.models.catalogue import MODELS as CATALOGUE
from coursepilot.report import BASELINES, ReportConfig, evaluate_all, flat_keys, write_report

from .test_recommenders import data, warehouse  # noqa: F401 - module fixtures reused

MODELS = {spec.name for spec in CATALOGUE if spec.report} | {"hybrid", "hybrid_eq6", "hybrid_eq6_level", "hybrid_tfidf"}


@pytest.fixture(scope="module")
def report(warehouse):  # noqa: F811
    return evaluate_all(warehouse, ReportConfig(seeds=(0, 1), neural_seeds=0), log=lambda _: None)


def test_every_model_has_every_key(report):
    assert set(report["models"]) == MODELS
    keys = flat_keys(report)
    for name in MODELS:
        for metric in ("precision@5", "recall@5", "f1@5", "accuracy@5", "precision@10", "recall@10", "ndcg@10",
                       "map@10", "hit@10", "mrr", "coverage"):
            value = keys[f"models.{name}.{metric}"]
            assert 0.0 <= value <= 1.0, (name, metric)
            assert f"models.{name}.{metric}_std" in keys
    assert set(report["cold_start"]) == {"learners", "courses"}
    assert set(report["significance"]["vs"]) == set(BASELINES)
    validation = report["validation"]
    assert validation["notes"]["skipped"] == {}  # the synthetic source has everything every model needs
    fusion = validation["fusion"]
    assert fusion["valid_ndcg@10"] >= max(fusion["components_alone"].values())  # never worse than its best part
    assert set(fusion["components_alone"]) == {s.name for s in CATALOGUE if s.fusion}
    per_learner = report["per_learner"]
    assert set(per_learner["model"]) == MODELS and len(per_learner) == len(MODELS) * report["config"]["test_learners_per_seed"][0]
    hybrid = per_learner[per_learner["model"] == "hybrid"]["ndcg@10"].mean()
    assert hybrid == pytest.approx(report["models"]["hybrid"]["ndcg@10"], abs=0.02)  # seed 0 vs the mean over seeds
    assert set(report["ratings"]) == {"global_mean", "biases", "user_knn_rating"}
    assert keys["ratings.biases.mae"] < keys["ratings.global_mean.mae"]


def test_same_seed_same_numbers_and_the_warehouse_is_untouched(report, warehouse):  # noqa: F811
    before = warehouse.execute("SELECT split, count(*) FROM split GROUP BY 1 ORDER BY 1").fetchall()
    again = evaluate_all(warehouse, ReportConfig(seeds=(0, 1), neural_seeds=0), log=lambda _: None)
    assert flat_keys(again) == pytest.approx(flat_keys(report))
    assert warehouse.execute("SELECT split, count(*) FROM split GROUP BY 1 ORDER BY 1").fetchall() == before


def test_report_files(report, tmp_path):
    files = write_report(report, tmp_path)
    assert {f.name for f in files} >= {"report.json", "report.md", "ndcg_at_k.png", "per_learner.parquet"}
    assert json.loads((tmp_path / "report.json").read_text())["models"]["als"]["ndcg@10"] == pytest.approx(report["models"]["als"]["ndcg@10"])
    text = (tmp_path / "report.md").read_text()
    assert "## Models" in text and "hybrid_eq6" in text and "## The shipped hybrid" in text and "## Definitions" in text
    assert (tmp_path / "ndcg_at_k.png").read_bytes()[:4] == b"\x89PNG"
