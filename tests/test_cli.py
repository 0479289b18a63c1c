"""The ``coursepilot`` command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from .test_validation import EVENTS, make


def cli(*args: str, home=None, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    if home is not None:
        env["COURSEPILOT_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "coursepilot.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.parametrize(
    "command", [[], ["run"], ["evaluate"], ["generate"], ["recommend"], ["peers"], ["promote"], ["ui"]]
)
def test_help_explains_every_flag(command):
    out = cli(*command, "--help").stdout
    assert "usage: coursepilot" in out
    if command == ["run"]:
        for flag in (
            "--format",
            "--data",
            "--mapping",
            "--size",
            "--seed",
            "--strict",
            "--home",
            "--log-level",
        ):
            assert flag in out


def test_generate_writes_parquet_and_truth(tmp_path):
    out = tmp_path / "data"
    cli("generate", "--size", "XS", "--learners", "300", "--seed", "5", "--out", str(out))
    learners = pd.read_parquet(out / "learners.parquet")
    assert len(learners) == 300
    assert {p.name for p in out.iterdir()} == {
        "learners.parquet",
        "courses.parquet",
        "interactions.parquet",
        "truth_learners.parquet",
        "truth_courses.parquet",
        "manifest.json",
    }


@pytest.mark.slow
def test_run_end_to_end_then_bad_data_keeps_tables(tmp_path):
    home = tmp_path / "home"
    done = cli("run", "--size", "XS", "--log-level", "WARNING", home=home)
    assert "Materialized every asset" in done.stdout and "interactions" in done.stdout
    assert (
        "INFO mlflow" not in done.stdout + done.stderr
        and "Downloading artifacts" not in done.stdout + done.stderr
    )
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM interactions").fetchone()[0] == 12_000
    assert (home / "dagster" / "dagster.yaml").exists() and any((home / "dagster").glob("history/**/*.db"))

    # the registered recommender serves from the registry, in a fresh process, without Dagster
    shown = cli("recommend", "--learner", "L0000001", "-k", "3", home=home).stdout
    assert "Top 3 for learner L0000001" in shown and shown.count("C000") >= 3
    assert (
        "matches your profile"
        in cli("recommend", "--profile", "web developer learning React", home=home).stdout
    )
    assert "Peers for learner L0000001" in cli("peers", "--learner", "L0000001", "-k", "3", home=home).stdout
    assert "version 1 -> 1" in cli("promote", "--version", "1", home=home).stdout
    missing = cli("promote", "--version", "9", home=home, check=False)
    assert missing.returncode == 2 and "has no version 9" in missing.stdout
    unknown = cli("recommend", "--learner", "nobody", home=home, check=False)
    assert unknown.returncode == 2 and "unknown learner 'nobody'" in unknown.stdout
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import sys, pandas as pd; from coursepilot.registry import load_recommender; "
                "m = load_recommender(); "
                "out = m.predict(pd.DataFrame({'learner_id': ['L0000002'], 'profile': [''], 'k': [4]})); "
                "print(len(out), out['course_id'].is_unique, 'dagster' in sys.modules)"
            ),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, COURSEPILOT_HOME=str(home)),
        timeout=300,
    )
    assert fresh.stdout.split()[-3:] == ["4", "True", "False"], fresh.stderr

    bad = make(tmp_path, events=EVENTS.replace("u1,c1,4", "u1,c1,44"))
    failed = cli(
        "run", "--format", "generic", "--data", str(bad), "--log-level", "ERROR", home=home, check=False
    )
    assert failed.returncode == 1
    assert "events.csv, column 'rating', row 1" in " ".join(failed.stdout.split())
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM interactions").fetchone()[0] == 12_000
    # a failed run registers nothing and leaves the champion where it was
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    assert len(client.search_model_versions("name='coursepilot-recommender'")) == 1
    assert client.get_registered_model("coursepilot-recommender").aliases == {"champion": 1, "challenger": 1}


def test_evaluate_refuses_a_catalogue(tmp_path):
    done = cli(
        "evaluate",
        "--format",
        "catalog",
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path / "out"),
        check=False,
    )
    assert done.returncode == 2 and "nothing to evaluate" in " ".join(done.stdout.split())


def test_unknown_path_is_a_clear_error(tmp_path):
    done = cli(
        "run", "--format", "oulad", "--data", str(tmp_path / "missing"), home=tmp_path / "home", check=False
    )
    assert done.returncode == 1 and "no such file or folder" in " ".join(done.stdout.split())
