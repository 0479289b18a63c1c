"""Nightly schedule, source-change sensor, promotion gate and rollback, with Dagster's and MLflow's own
APIs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from dagster import DagsterInstance, build_schedule_context, build_sensor_context, validate_run_config

from coursepilot import warehouse
from coursepilot.home import ProjectHome
from coursepilot.registry import MODEL_NAME, champion_version, promote, promotion_gate
from pipelines.definitions import EXECUTOR_ENV, EXECUTORS, build_definitions, executor
from pipelines.run import prepare_dagster_home
from pipelines.threads import THREADS
from resources import DatasetResource

REPO = Path(__file__).resolve().parents[1]


def test_nightly_schedule_defaults_and_config(tmp_path, monkeypatch):
    schedule = build_definitions(ProjectHome.resolve(tmp_path)).resolve_schedule_def("nightly_retrain")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "UTC")
    assert schedule.default_status.value == "RUNNING" and schedule.job_name == "nightly_retrain"
    result = schedule.evaluate_tick(build_schedule_context(instance=DagsterInstance.ephemeral()))
    assert len(result.run_requests) == 1
    monkeypatch.setenv("COURSEPILOT_NIGHTLY_CRON", "30 3 * * 1-5")
    monkeypatch.setenv("COURSEPILOT_TIMEZONE", "Europe/Paris")
    schedule = build_definitions(ProjectHome.resolve(tmp_path)).resolve_schedule_def("nightly_retrain")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 3 * * 1-5", "Europe/Paris")


def test_weekly_full_rebuild_and_the_nightly_job_keeps_tuning(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEPILOT_WEEKLY_CRON", "0 4 * * 6")
    defs = build_definitions(ProjectHome.resolve(tmp_path))
    weekly = defs.resolve_schedule_def("weekly_full")
    assert (weekly.cron_schedule, weekly.job_name, weekly.default_status.value) == (
        "0 4 * * 6",
        "full_pipeline",
        "RUNNING",
    )
    nightly = defs.resolve_job_def("nightly_retrain")
    steps = {n.name for n in nightly.graph.node_defs}
    assert {"course_embeddings", "als_model", "hybrid_model", "recommender", "peer_recommendations"} <= steps
    assert not steps & {
        "bpr_model",
        "baseline_models",
        "neural_hybrid_model",
        "rating_models",
        "evaluation_report",
    }
    assert {op: cfg["config"] for op, cfg in nightly.run_config["ops"].items()} == {
        "als_model": {"retune": False},
        "hybrid_model": {"retune": False},
        "peer_clusters": {"retune": False},
        "learner_labels": {"retune": False},
        "peer_recommendations": {"retune": False, "compare": False},
    }
    assert {n.name for n in defs.resolve_job_def("full_pipeline").graph.node_defs} > steps
    # the weekly run cleans every row and recomputes every learner's split, state, profile and peers, whatever
    # their fingerprints say, and clusters every window afresh
    assert {
        op: cfg["config"] for op, cfg in defs.resolve_job_def("full_pipeline").run_config["ops"].items()
    } == {
        "cleaned_tables": {"incremental": False},
        "split": {"incremental": False},
        "learner_state": {"incremental": False},
        "learner_profiles": {"incremental": False},
        "peer_clusters": {"incremental": False},
        "peer_recommendations": {"incremental": False},
    }


def test_sensor_runs_on_a_real_change_only(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.csv").write_text("user,item\nu1,c1\n")
    defs = build_definitions(
        ProjectHome.resolve(tmp_path / "home"), DatasetResource(format="generic", path=str(data))
    )
    sensor = defs.resolve_sensor_def("source_change")

    def tick(cursor):
        context = build_sensor_context(cursor=cursor, instance=DagsterInstance.ephemeral())
        return sensor.evaluate_tick(context), context.cursor

    first, cursor = tick(None)
    assert not first.run_requests and "recorded the fingerprint" in first.skip_message
    same, cursor_again = tick(cursor)
    assert not same.run_requests and cursor_again == cursor
    (data / "events.csv").touch()  # a new mtime alone is no change
    assert not tick(cursor)[0].run_requests
    (data / "events.csv").write_text("user,item\nu1,c1\nu2,c1\n")
    changed, new_cursor = tick(cursor)
    assert len(changed.run_requests) == 1 and changed.run_requests[0].run_key == new_cursor != cursor
    synthetic = build_definitions(
        ProjectHome.resolve(tmp_path / "home"), DatasetResource()
    ).resolve_sensor_def("source_change")
    assert (
        "synthetic"
        in synthetic.evaluate_tick(build_sensor_context(instance=DagsterInstance.ephemeral())).skip_message
    )


@pytest.fixture
def client(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    client.create_registered_model(MODEL_NAME)
    return client


def register(client, score: float | None) -> str:
    with mlflow.start_run() as run:
        if score is not None:
            mlflow.log_metric("valid_ndcg_at_10", score)
    return str(
        client.create_model_version(
            MODEL_NAME, f"runs:/{run.info.run_id}/recommender", run.info.run_id
        ).version
    )


def test_gate_keeps_the_champion_against_a_worse_model_and_rollback_works(client):
    assert promotion_gate(client, register(client, 0.20), tolerance=0.01)[0]
    worse = register(client, 0.15)
    promoted, reason = promotion_gate(client, worse, tolerance=0.01)
    assert not promoted and "below the champion" in reason
    assert (
        champion_version(client) == "1"
        and str(client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == worse
    )
    close = register(client, 0.195)  # within the tolerance
    assert promotion_gate(client, close, tolerance=0.01)[0] and champion_version(client) == close
    unscored = register(client, None)  # a partial run that recorded no validation score
    assert not promotion_gate(client, unscored, tolerance=0.01)[0] and champion_version(client) == close
    promote(client, "1")
    assert champion_version(client) == "1"
    with pytest.raises(Exception):
        promote(client, "42")


@pytest.mark.parametrize("name", EXECUTORS)
def test_every_executor_config_is_valid_and_only_threads_share_a_process(tmp_path, monkeypatch, name):
    monkeypatch.setenv(EXECUTOR_ENV, name)
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")  # read, not connected to
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/1")
    job = build_definitions(ProjectHome.resolve(tmp_path)).resolve_job_def("full_pipeline")
    execution = validate_run_config(job, {}).get("execution", {})
    assert job.executor_def.name == ("in_process" if name == "in_process" else executor(name).name)
    config = next(iter(execution.values()), {}) if execution else {}
    assert (
        name == "in_process"
        or (name == "threads" and config.get("max_concurrent", THREADS) == THREADS)
        or config.get("max_concurrent") == 1
        or config.get("config_source") == {"worker_concurrency": 1}
    )


def test_unknown_executor_is_refused(monkeypatch):
    monkeypatch.setenv(EXECUTOR_ENV, "processes")
    with pytest.raises(
        ValueError, match="COURSEPILOT_EXECUTOR='processes': choose one of in_process, threads, multiprocess"
    ):
        build_definitions()


def materialize_xs(home: ProjectHome, executor_name: str, select: str) -> subprocess.CompletedProcess:
    """``dagster asset materialize --select SELECT`` on the code location with that executor, synthetic XS
    data and ``home`` (the path of the UI and the daemon)."""
    env = dict(
        os.environ,
        COURSEPILOT_EXECUTOR=executor_name,
        COURSEPILOT_SYNTHETIC_SIZE="XS",
        COURSEPILOT_HOME=str(home.root),
        DAGSTER_HOME=str(prepare_dagster_home(home)),
    )
    dagster = str(Path(sys.executable).parent / "dagster")
    return subprocess.run(
        [dagster, "asset", "materialize", "-m", "pipelines.definitions", "--select", select],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_multiprocess_executor_runs_each_step_in_its_own_process(tmp_path):
    home = ProjectHome.resolve(tmp_path / "home")
    done = materialize_xs(
        home, "multiprocess", "raw_learners,raw_courses,raw_interactions,learners,courses,interactions,split"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "multiprocess" in done.stderr and done.stderr.count("STEP_WORKER_STARTED") >= 3
    with warehouse.connect(home.warehouse, read_only=True) as con:
        assert warehouse.row_count(con, "split") == warehouse.row_count(con, "interactions") > 0
