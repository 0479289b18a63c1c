"""Dagster's storage and MLflow's backend store on PostgreSQL: a real server on 127.0.0.1, the nightly job
against it."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.servers import free_port

REPO = Path(__file__).resolve().parents[1]
PG_BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None)
PASSWORD = "coursepilot-test"


def as_postgres(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a server command as the ``postgres`` user when we are root (PostgreSQL refuses to run as root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + command, check=True, capture_output=True, text=True, **kwargs)


@contextlib.contextmanager
def postgres_server():
    """A throw-away cluster listening on 127.0.0.1 only, with password authentication over TCP."""
    data = Path(tempfile.mkdtemp(prefix="coursepilot-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    as_postgres(
        [
            f"{PG_BIN}/initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ]
    )
    as_postgres(
        [
            f"{PG_BIN}/pg_ctl",
            "-D",
            str(data),
            "-l",
            str(data / "server.log"),
            "-w",
            "start",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {data}",
        ]
    )
    try:

        def psql(sql: str, db: str = "postgres") -> str:
            return as_postgres(
                ["psql", "-h", str(data), "-p", str(port), "-U", "postgres", "-d", db, "-tAc", sql]
            ).stdout.strip()

        psql(f"CREATE ROLE coursepilot LOGIN PASSWORD '{PASSWORD}'")
        for db in ("dagster", "mlflow"):
            psql(f"CREATE DATABASE {db} OWNER coursepilot")
        yield port, psql
    finally:
        as_postgres([f"{PG_BIN}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(
    PG_BIN is None or shutil.which("psql") is None,
    reason="Debian's postgresql is not installed (apt-get install postgresql; .ci/run does)",
)
def test_nightly_job_on_postgresql_storage(tmp_path):
    home = tmp_path / "home"
    with postgres_server() as (port, psql):
        env = dict(
            os.environ,
            COURSEPILOT_DAGSTER_CONFIG=str(REPO / "deploy" / "postgres" / "dagster.yaml"),
            DAGSTER_PG_HOST="127.0.0.1",
            DAGSTER_PG_PORT=str(port),
            DAGSTER_PG_USER="coursepilot",
            DAGSTER_PG_PASSWORD=PASSWORD,
            DAGSTER_PG_DB="dagster",
            COURSEPILOT_MLFLOW_URI=f"postgresql://coursepilot:{PASSWORD}@127.0.0.1:{port}/mlflow",
        )
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "coursepilot"),
                "run",
                "--size",
                "XS",
                "--home",
                str(home),
                "--log-level",
                "WARNING",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert PASSWORD not in done.stdout + done.stderr  # the tracking URI is printed redacted

        assert psql("SELECT status FROM runs WHERE pipeline_name = 'full_pipeline'", "dagster") == "SUCCESS"
        assert (
            int(
                psql(
                    "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'",
                    "dagster",
                )
            )
            >= 20
        )
        assert psql("SELECT name FROM registered_models", "mlflow") == "coursepilot-recommender"
        assert psql(
            "SELECT alias || '=' || version FROM registered_model_aliases ORDER BY alias", "mlflow"
        ).split() == ["challenger=1", "champion=1"]
        assert int(psql("SELECT count(*) FROM runs", "mlflow")) >= 5
    # nothing went to the local SQLite stores
    assert not (home / "mlflow.db").exists()
    assert not list((home / "dagster").glob("**/*.db"))
