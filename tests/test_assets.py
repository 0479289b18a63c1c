"""The source-data assets and their checks, materialized for real with ``dagster.materialize``."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, Definitions, materialize

from assets.checks import DATA_CHECKS
from assets.source_data import cleaned_tables, raw_tables
from coursepilot import quality
from coursepilot.home import ProjectHome
from coursepilot.synthetic.growth import append_growth
from coursepilot.warehouse import connect
from pipelines.definitions import build_definitions
from resources import DatasetResource, ProjectHomeResource, warehouse_resource

from .test_validation import EVENTS, make


def run(home: ProjectHome, dataset: DatasetResource):
    return materialize(
        [raw_tables, cleaned_tables, *DATA_CHECKS],
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
        resources={
            "dataset": dataset,
            "warehouse": warehouse_resource(home),
            "home": ProjectHomeResource(root=str(home.root)),
        },
    )


def test_materialize_synthetic_with_checks(tmp_path, xs_folder):
    home = ProjectHome.resolve(tmp_path / "home")
    result = run(home, DatasetResource(format="synthetic", path=str(xs_folder)))
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(DATA_CHECKS) and all(e.passed for e in evaluations)
    counts = {
        m.asset_key.to_user_string(): m.metadata["dagster/row_count"].value
        for m in result.asset_materializations_for_node("cleaned_tables")
    }
    assert counts == {"learners": 800, "courses": 80, "interactions": 12_000}
    raw = {
        m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("raw_tables")
    }
    assert raw["raw_courses"]["source_format"].value == "synthetic"
    assert "truth_learners" in raw["raw_learners"]["ground_truth_tables"].value


def test_default_synthetic_is_generated_under_the_home(tmp_path):
    home = ProjectHome.resolve(tmp_path / "home")
    assert run(home, DatasetResource(size="XS", seed=3)).success
    assert [p.name for p in home.data.iterdir()] == ["synthetic-800x80x12000-w12-s3-v1"]


def test_failed_load_fails_the_run_and_keeps_tables(tmp_path, xs_folder):
    home = ProjectHome.resolve(tmp_path / "home")
    assert run(home, DatasetResource(format="synthetic", path=str(xs_folder))).success
    bad = make(tmp_path, events=EVENTS.replace("u2,c2,2", "u2,c2,11"))
    result = run(home, DatasetResource(format="generic", path=str(bad)))
    assert not result.success
    with connect(home.warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM interactions").fetchone()[0] == 12_000


def test_checks_catch_a_corrupted_table(tmp_path, xs_folder):
    home = ProjectHome.resolve(tmp_path / "home")
    assert run(home, DatasetResource(format="synthetic", path=str(xs_folder))).success
    with connect(home.warehouse) as con:
        con.execute("INSERT INTO learners SELECT * FROM learners LIMIT 1")
        con.execute("UPDATE interactions SET watch_pct = 140 WHERE rowid = 3")
        con.execute("INSERT INTO interactions (learner_id, course_id) VALUES ('ghost', 'C00001')")
        assert not quality.unique_key(con, "learners").passed
        assert quality.value_ranges(con, "interactions", [1, 5]).metadata["out_of_range_watch_pct"] == 1
        assert quality.referential_integrity(con).metadata == {
            "unknown_learner_id": 1,
            "unknown_course_id": 0,
        }
        con.execute("UPDATE courses SET title = NULL WHERE course_id = 'C00002'")
        assert quality.null_rates(con, "courses").metadata["required_nulls"] == 1


def test_code_location_loads(tmp_path):
    defs = build_definitions(ProjectHome.resolve(tmp_path), DatasetResource(size="XS"))
    Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("full_pipeline")
    assert {n.name for n in job.graph.node_defs} >= {"raw_tables", "cleaned_tables"}
    graph, keys = defs.resolve_asset_graph(), set(defs.resolve_all_asset_keys())
    # every dependency is an asset of the graph: none became an external asset
    assert all(graph.get(key).parent_keys <= keys and graph.get(key).is_materializable for key in keys)
    nightly = {n.name for n in defs.resolve_job_def("nightly_retrain").graph.node_defs}
    comparisons = {"bpr_model", "baseline_models", "neural_hybrid_model", "rating_models"}
    assert not nightly & {*comparisons, "difficulty_steering", "evaluation_report"}
    assert {"als_model", "hybrid_model", "recommender", "peer_recommendations"} <= nightly


def test_dataset_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEPILOT_SOURCE_FORMAT", "elearning")
    monkeypatch.setenv("COURSEPILOT_SOURCE_PATH", "/data/mars")
    dataset = DatasetResource.from_env()
    assert (dataset.format, dataset.path, dataset.size) == ("elearning", "/data/mars", "S")
    with pytest.raises(ValueError, match="needs a path"):
        DatasetResource(format="oulad").load(ProjectHome.resolve(tmp_path))


@pytest.mark.slow
def test_full_graph_then_a_nightly_retrain_on_grown_data(tmp_path, xs_folder, monkeypatch):
    import mlflow

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the serving bundle is staged here, then removed
    home = ProjectHome.resolve(tmp_path / "home")
    folder = Path(shutil.copytree(xs_folder, tmp_path / "data"))
    defs = build_definitions(home, DatasetResource(format="synthetic", path=str(folder)))
    job = defs.resolve_job_def("full_pipeline")

    def embedded(result):
        meta = {
            e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        return meta["course_embeddings"]["encoded"].value, meta["course_embeddings"]["cached"].value, meta

    instance = DagsterInstance.ephemeral()
    first = job.execute_in_process(instance=instance)
    assert first.success
    learner_ids = set(pd.read_parquet(xs_folder / "learners.parquet")["learner_id"].astype(str))
    messages = " ".join(entry.user_message for entry in instance.all_logs(first.run_id))
    # no learner data in the logs
    assert not {word.strip(".,:;()'\"") for word in messages.split()} & learner_ids
    encoded, cached, meta = embedded(first)
    assert (encoded, cached) == (80, 0)
    assert meta["learner_labels"]["label_source"].value == "ground truth"
    assert meta["course_labels"]["difficulty_method"].value == "source"
    with connect(home.warehouse, read_only=True) as con:
        for table, rows in (
            ("course_embeddings", 80),
            ("course_labels", 80),
            ("learner_profiles", 800),
            ("similar_courses", 800),
            ("attribute_embeddings", None),
            ("tfidf_course_vectors", None),
            ("learner_state", None),
            ("peer_clusters", None),
            ("peer_recommendations", None),
        ):
            count = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            assert count == rows if rows else count > 0, table
    client = mlflow.MlflowClient(f"sqlite:///{home.mlflow_db}")
    runs = client.search_runs([client.get_experiment_by_name("coursepilot").experiment_id])
    assert {r.info.run_name for r in runs} - {"hybrid_eq6_level", "hybrid_eq21"} == {
        "learner_labels_rf",
        "learner_labels_svm",
        "course_labels_logreg",
        "als",
        "bpr",
        "popularity",
        "user_knn",
        "content_minilm",
        "content_tfidf",
        "hybrid",
        "neural_hybrid",
        "recommender",
        "global_mean",
        "biases",
        "user_knn_rating",
        "peer_recommendations",
        "evaluation_report",
    }
    rating_runs = {"global_mean", "biases", "user_knn_rating", "peer_recommendations", "evaluation_report"}
    assert all(
        "test_ndcg_at_10" in r.data.metrics
        for r in runs
        if not r.info.run_name.startswith(("learner_", "course_")) and r.info.run_name not in rating_runs
    )
    assert all(
        r.data.metrics["test_mae"] > 0
        for r in runs
        if r.info.run_name in {"global_mean", "biases", "user_knn_rating"}
    )
    report = json.loads((home.reports / "latest" / "report.json").read_text())
    assert "neural_hybrid" in report["models"] and report["peers"]["hybrid_peers"]["ndcg@10"] > 0
    # the report trains the epochs it chose
    neural = next(r for r in runs if r.info.run_name == "neural_hybrid")
    # 0: it fell back to ALS
    assert report["config"]["neural_epochs"] == int(neural.data.params["best_epochs"])
    assert {p.name for p in (home.reports / "latest").iterdir()} >= {
        "report.json",
        "report.md",
        "ndcg_at_k.png",
        "cluster_map.png",
    }
    peers = next(r for r in runs if r.info.run_name == "peer_recommendations")
    assert 0 < peers.data.metrics["hybrid_peers_ndcg_at_10"] <= 1
    served = next(r for r in runs if r.info.run_name == "recommender")
    assert served.data.metrics["valid_ndcg_at_10"] > 0 and served.data.tags["model"] == "hybrid"
    model_files = {p.name for p in (home.mlflow_artifacts).rglob("*") if p.is_file()}
    assert "serving_pyfunc.py" in model_files and not {
        f for f in model_files if f.endswith((".pkl", ".pickle", ".cloudpickle"))
    }
    versions = client.search_model_versions("name='coursepilot-recommender'")
    assert len(versions) == 1 and client.get_registered_model("coursepilot-recommender").aliases == {
        "champion": 1,
        "challenger": 1,
    }
    assert all(
        r.data.tags["data_fingerprint"] and r.data.tags["dagster_run_id"] == first.run_id for r in runs
    )
    assert not list(scratch.glob("coursepilot-bundle-*"))

    # a new course and about 2% more interactions
    new_courses, new_interactions = append_growth(folder, share=0.02)
    assert new_courses == 1 and new_interactions > 200
    nightly = defs.resolve_job_def("nightly_retrain")
    second = nightly.execute_in_process(instance=DagsterInstance.ephemeral())
    assert second.success
    encoded, cached, after = embedded(second)
    assert (encoded, cached) == (1, 80)  # only the new course is encoded
    # the source only grew: its new rows were appended, and only the raw rows they touch were cleaned again
    assert after["raw_interactions"]["written"].value.startswith("the source grew")
    assert after["raw_learners"]["written"].value == "replaced whole"
    assert after["interactions"]["cleaned"].value.startswith("the raw rows that appended rows touch")
    assert after["interactions"]["rows_read"].value == new_interactions
    assert meta["interactions"]["cleaned"].value == "every row"
    assert after["als_model"]["factors"].value == meta["als_model"]["factors"].value  # kept, not retuned
    assert after["als_model"]["settings"].value == meta["als_model"]["settings"].value
    # the full run fits from scratch, the nightly from the factors it left
    assert meta["als_model"]["start"].value == "cold"
    assert after["als_model"]["start"].value.startswith("the last factors")
    assert meta["als_model"]["validation_fit_start"].value == "cold (retuned)"
    assert after["als_model"]["validation_fit_start"].value.startswith("hybrid_model's last fit")
    # header, rule, the one kept point
    assert len(after["als_model"]["validation_grid"].value.splitlines()) == 3
    assert len(meta["als_model"]["validation_grid"].value.splitlines()) > 5  # the full run searched the grid
    assert after["peer_clusters"]["k"].value == meta["peer_clusters"]["k"].value
    assert len(after["peer_clusters"]["silhouette_by_k"].value) == 1
    assert after["hybrid_model"]["weights"].value == meta["hybrid_model"]["weights"].value
    settings = meta["hybrid_model"][
        "component_settings"
    ].value  # the nightly refits only the weighted components
    assert after["hybrid_model"]["component_settings"].value == {
        m: settings[m] for m in after["hybrid_model"]["weights"].value
    }
    # the weighted factor models fit from the ones the last run kept: on the carve and (BPR; ALS comes from
    # als_model) on all of train; the full run started cold
    weighted = set(after["hybrid_model"]["weights"].value)
    assert meta["hybrid_model"]["started_from_the_last_factors"].value == {
        "validation_carve": [],
        "all_of_train": [],
    }
    assert after["hybrid_model"]["started_from_the_last_factors"].value == {
        "validation_carve": sorted(weighted & {"als", "bpr"}),
        "all_of_train": sorted(weighted & {"bpr"}),
    }
    # learners without new rows keep their state and profile
    for name in ("learner_state", "learner_profiles"):
        assert meta[name]["recomputed_everyone"].value == "incremental updates are off"  # the full job
        recomputed, kept = after[name]["recomputed_learners"].value, after[name]["kept_learners"].value
        assert 0 < recomputed < kept, name
    # the nightly follows the kept cluster track: the kept last window again, and any new week's
    assert meta["peer_clusters"]["recomputed_everything"].value == "incremental updates are off"
    assert after["peer_clusters"]["recomputed_everything"].value == "no: the kept track was extended"
    windows = meta["peer_clusters"]["windows"].value
    assert after["peer_clusters"]["kept_windows"].value == windows - 1
    assert (
        after["peer_clusters"]["recomputed_windows"].value
        == after["peer_clusters"]["windows"].value - windows + 1
    )
    assert 0 < after["peer_clusters"]["profile_blocks_projected"].value < kept
    # peers ranked again only for learners whose inputs changed, whose cluster moved or who lost a peer
    peers_meta = after["peer_recommendations"]
    assert meta["peer_recommendations"]["ranked_everyone"].value == "incremental updates are off"
    assert peers_meta["ranked_everyone"].value == "no: only learners whose peers may have changed"
    assert peers_meta["inputs_changed"].value <= peers_meta["ranked_learners"].value
    assert peers_meta["ranked_learners"].value + peers_meta["kept_learners"].value == recomputed + kept
    # the classifier the full run fitted labels the learners whose features changed; no classifier is trained
    labels = after["learner_labels"]
    assert labels["chosen_model"].value == meta["learner_labels"]["chosen_model"].value
    assert labels["classifier"].value.startswith("kept from the last fit")
    assert labels["recomputed_everyone"].value == "no: only learners whose inputs changed"
    assert 0 < labels["recomputed_learners"].value < labels["kept_learners"].value
    assert "mlflow_runs" in meta["learner_labels"] and "mlflow_runs" not in labels
    assert not set(after) & {
        "bpr_model",
        "baseline_models",
        "neural_hybrid_model",
        "rating_models",
        "evaluation_report",
    }
    with connect(home.warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM course_embeddings").fetchone()[0] == 81
        assert con.execute("SELECT count(*) FROM interactions").fetchone()[0] == 12_000 + new_interactions
    later = client.search_runs(
        [client.get_experiment_by_name("coursepilot").experiment_id],
        f"tags.dagster_run_id = '{second.run_id}'",
    )
    assert {r.info.run_name for r in later} >= {"als", "hybrid", "recommender", "peer_recommendations"}
    assert not {r.info.run_name for r in later} & {"bpr", "neural_hybrid", "evaluation_report"}
    assert client.get_registered_model("coursepilot-recommender").aliases["challenger"] == 2
    freshness = [e for e in second.get_asset_check_evaluations() if e.check_name == "champion_freshness"]
    assert len(freshness) == 1 and freshness[0].passed
