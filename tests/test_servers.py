"""The MLflow UI's server, started on 127.0.0.1 by the test: the registry is readable over its REST API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow
import pytest

from coursepilot.registry import MODEL_NAME, promotion_gate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_server_serves_the_registry_over_rest(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient()
    client.create_registered_model(MODEL_NAME)
    with mlflow.start_run() as run:
        mlflow.log_metric("valid_ndcg_at_10", 0.2)
    version = client.create_model_version(MODEL_NAME, f"runs:/{run.info.run_id}/recommender", run.info.run_id).version
    assert promotion_gate(client, str(version), 0.01)[0]

    port = free_port()
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1", "--default-artifact-root", str(tmp_path / "artifacts")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, "mlflow server exited"
                assert time.monotonic() < deadline, "mlflow server did not answer in 90 s"
                time.sleep(0.5)
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/registered-models/get?name={MODEL_NAME}", timeout=10) as reply:
            model = json.load(reply)["registered_model"]
        assert {a["alias"]: a["version"] for a in model["aliases"]} == {"champion": "1", "challenger": "1"}
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/registered-models/alias?name={MODEL_NAME}&alias=champion", timeout=10) as reply:
            assert json.load(reply)["model_version"]["run_id"] == run.info.run_id
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
