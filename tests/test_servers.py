"""The MLflow UI's server, started on 127.0.0.1 by the test: the registry is readable over its REST API."""

from __future__ import annotations

import os
import sys

import mlflow
import pytest

from coursepilot.registry import MODEL_NAME, promotion_gate
from tests.servers import free_port, get_json, serving


@pytest.mark.slow
def test_mlflow_server_serves_the_registry_over_rest(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient()
    client.create_registered_model(MODEL_NAME)
    with mlflow.start_run() as run:
        mlflow.log_metric("valid_ndcg_at_10", 0.2)
    version = client.create_model_version(
        MODEL_NAME, f"runs:/{run.info.run_id}/recommender", run.info.run_id
    ).version
    assert promotion_gate(client, str(version), 0.01)[0]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        store,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--default-artifact-root",
        str(tmp_path / "artifacts"),
    ]
    with serving(command, f"{base}/health", env=dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")):
        model = get_json(f"{base}/api/2.0/mlflow/registered-models/get?name={MODEL_NAME}")["registered_model"]
        assert {a["alias"]: a["version"] for a in model["aliases"]} == {"champion": "1", "challenger": "1"}
        alias = get_json(f"{base}/api/2.0/mlflow/registered-models/alias?name={MODEL_NAME}&alias=champion")
        assert alias["model_version"]["run_id"] == run.info.run_id
