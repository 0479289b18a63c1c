"""Security rules: no pickles, loopback-only servers, redacted credentials, checked paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coursepilot.cli import dagster_dev_command
from coursepilot.tracking import redact
from pipelines.run import INSTANCE_CONFIG_ENV, instance_config

REPO = Path(__file__).resolve().parents[1]
SOURCES = [
    p for folder in ("coursepilot", "assets", "resources", "pipelines") for p in (REPO / folder).rglob("*.py")
]


def test_nothing_is_pickled_or_unpickled():
    for path in SOURCES:
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(pickle|cloudpickle|joblib|dill)\b", text, re.M), path
        assert "torch.load(" not in text, path
        for call in re.findall(r"np\.load\([^)]*\)", text):
            assert "allow_pickle=False" in call, f"{path}: {call}"


def test_sql_values_are_parameters_not_formatted_strings():
    # values formatted into SQL would appear as quoted placeholders such as '{value}' inside an f-string
    for path in SOURCES:
        for line in path.read_text().splitlines():
            assert not re.search(r"""f["'].*(=|IN|LIKE)\s*'\{""", line), f"{path}: {line.strip()}"


def test_the_dagster_ui_binds_to_loopback_only():
    command = dagster_dev_command(3000, REPO / "workspace.yaml")
    assert command[command.index("-h") + 1] == "127.0.0.1"
    assert "MLFLOW_HOST:-127.0.0.1" in (REPO / "deploy" / "mlflow" / "server.sh").read_text()


def test_credentials_are_redacted_for_printing():
    assert (
        redact("postgresql://cp:s3cret@127.0.0.1:5432/mlflow") == "postgresql://cp:***@127.0.0.1:5432/mlflow"
    )
    assert redact("sqlite:////tmp/home/mlflow.db") == "sqlite:////tmp/home/mlflow.db"


def test_instance_config_path_is_checked(monkeypatch, tmp_path):
    monkeypatch.setenv(INSTANCE_CONFIG_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(FileNotFoundError, match="COURSEPILOT_DAGSTER_CONFIG=.*missing.yaml: no such file"):
        instance_config()
    monkeypatch.setenv(INSTANCE_CONFIG_ENV, str(REPO / "deploy" / "postgres" / "dagster.yaml"))
    assert instance_config().name == "dagster.yaml"


def test_each_home_keeps_its_own_tracking_store(tmp_path, monkeypatch):
    from coursepilot.home import ProjectHome
    from coursepilot.tracking import TRACKING_ENV, tracking_uri

    monkeypatch.delenv(TRACKING_ENV, raising=False)
    # as mlflow.set_tracking_uri leaves it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'another-home.db'}")
    home = ProjectHome.resolve(tmp_path / "home")
    assert tracking_uri(home) == f"sqlite:///{home.mlflow_db}"
    monkeypatch.setenv(TRACKING_ENV, "postgresql://cp:pw@127.0.0.1:5432/mlflow")
    assert tracking_uri(home) == "postgresql://cp:pw@127.0.0.1:5432/mlflow"
