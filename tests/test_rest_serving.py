"""The registered champion served over REST by `mlflow models serve` on 127.0.0.1: known learners, new
learners with a profile (cold start, marked as such) and unknown learners without one (a clean error, no stack
trace)."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from coursepilot.embeddings import embed_texts
from coursepilot.home import HOME_ENV, ProjectHome
from coursepilot.registry import (
    MODEL_NAME,
    ServingModel,
    load_recommender,
    log_serving_model,
    promotion_gate,
    save_bundle,
    serving_onnx_folder,
)
from tests.recommender_data import FUSION_PARAMS
from tests.servers import free_port, get_json, serving

PROFILE = "accountant who uses Excel and SAP for budgeting"
UNKNOWN = {"learner_id": "nobody", "profile": "", "k": 3}


@pytest.fixture(scope="module")
def champion(tmp_path_factory, data, fusion):
    """A fresh MLflow store whose coursepilot-recommender@champion is the fusion, logged as the pipeline logs
    it."""
    root = tmp_path_factory.mktemp("registry")
    bundle = save_bundle(
        root / "bundle", data, [f"course {c}" for c in data.course_ids], fusion, FUSION_PARAMS
    )
    uri, previous = f"sqlite:///{root / 'mlflow.db'}", mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment("serving", artifact_location=str(root / "artifacts"))
        with mlflow.start_run(experiment_id=experiment):
            mlflow.log_metric("valid_ndcg_at_10", 0.2)
            version = str(log_serving_model(bundle).registered_model_version)
        assert promotion_gate(mlflow.MlflowClient(), version, 0.01)[0]
        yield uri, ServingModel(bundle)
    finally:
        mlflow.set_tracking_uri(previous)


def post(url: str, records: list[dict]) -> tuple[int, dict]:
    """POST ``records`` as a DataFrame to an MLflow scoring server: (HTTP status, decoded JSON body)."""
    try:
        return 200, get_json(url, {"dataframe_records": records}, timeout=120)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_in_process_an_unknown_learner_without_profile_is_a_clear_value_error(champion, data):
    # the fixture points MLflow at its store
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    with pytest.raises(ValueError, match="row 0: unknown learner 'nobody' and no profile text"):
        model.predict(pd.DataFrame([UNKNOWN]))
    known = model.predict(pd.DataFrame([{"learner_id": str(data.learner_ids[0]), "profile": "", "k": 2}]))
    assert list(known["source"]) == ["learner", "learner"] and known["error"].isna().all()


def test_a_profile_is_encoded_by_the_homes_onnx_export_when_there_is_one(tmp_path, monkeypatch, champion):
    _, model = champion
    query = pd.DataFrame([{"learner_id": "", "profile": PROFILE, "k": 5}])
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "no-home"))
    by_torch = model.predict(query)
    folder = ProjectHome.resolve(tmp_path / "home").embeddings / "onnx"
    folder.mkdir(parents=True)
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    assert serving_onnx_folder() is None  # no export of this model there: torch, no export in a request
    embed_texts(["warm-up"], backend="onnx", onnx_folder=folder)  # as the pipeline's embedder leaves it
    assert serving_onnx_folder() == str(folder)
    by_onnx = model.predict(query)
    assert list(by_onnx["course_id"]) == list(by_torch["course_id"])
    np.testing.assert_allclose(by_onnx["score"], by_torch["score"], atol=1e-4)
    # loaded for a home: that home's export, whatever the process's own home
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "no-home"))
    local = mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}@champion", dst_path=str(tmp_path))
    uri = mlflow.get_tracking_uri()
    try:
        served = load_recommender(home=ProjectHome.resolve(tmp_path / "home"), uri=local)
    finally:
        mlflow.set_tracking_uri(uri)
    assert serving_onnx_folder(served.unwrap_python_model().model.home) == str(folder)
    assert serving_onnx_folder() is None
    assert list(served.predict(query)["course_id"]) == list(by_onnx["course_id"])


@pytest.mark.slow
def test_mlflow_models_serve_answers_known_new_and_unknown_learners(tmp_path, champion, data):
    uri, local = champion
    row = int(np.argmax(np.diff(data.matrix.indptr)))
    learner = str(data.learner_ids[row])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        f"models:/{MODEL_NAME}@champion",
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # its uvicorn
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=uri,
        MLFLOW_DISABLE_TELEMETRY="true",
        HF_HUB_OFFLINE="1",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    with serving(command, f"{base}/ping", timeout=180, env=env, log=tmp_path / "serve.log"):
        status, body = post(
            f"{base}/invocations",
            [
                {"learner_id": learner, "profile": "", "k": 5},
                {"learner_id": "L-new", "profile": PROFILE, "k": 4},
                {"learner_id": "", "profile": PROFILE, "k": 3},
                UNKNOWN,
            ],
        )
        assert status == 200, body
        answers = body["predictions"]
        by_query = {q: [a for a in answers if a["query"] == q] for q in range(4)}

        assert [a["source"] for a in by_query[0]] == ["learner"] * 5
        # in-process
        assert [a["course_id"] for a in by_query[0]] == list(local.for_learner(learner, 5)["course_id"])
        assert not {a["course_id"] for a in by_query[0]} & set(data.course_ids[data.matrix[row].indices])

        for query, k, who in ((1, 4, "L-new"), (2, 3, None)):
            assert [(a["source"], a["learner_id"], a["reason"]) for a in by_query[query]] == [
                ("cold_start", who, "matches your profile")
            ] * k
            assert [a["rank"] for a in by_query[query]] == list(range(1, k + 1))
            assert all(a["error"] is None for a in by_query[query])
        # the profile decides
        assert [a["course_id"] for a in by_query[1]][:3] == [a["course_id"] for a in by_query[2]]

        (error,) = by_query[3]
        assert error["source"] == "error" and error["learner_id"] == "nobody"
        assert (
            error["error"]
            == "unknown learner 'nobody' and no profile text; a new learner needs a profile text"
        )
        assert error["rank"] is None and error["course_id"] is None and error["score"] is None

        # nothing to answer: a bad request, said plainly
        status, body = post(f"{base}/invocations", [UNKNOWN])
        assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "row 0: unknown learner 'nobody' and no profile text" in body["message"]
        assert "Traceback" not in json.dumps(body) and "stack_trace" not in body
