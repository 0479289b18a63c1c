"""The Dagster UI for real: `coursepilot ui` on 127.0.0.1, nightly runs launched over GraphQL and queued,
pages in Chromium."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.servers import free_port, get_json, serving

CHROMIUM = shutil.which("chromium")
LOCATION = {"repositoryLocationName": "coursepilot", "repositoryName": "__repository__"}

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime } } }"
SCHEDULE = """
query Schedule($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) {
    ... on Schedule { cronSchedule executionTimezone scheduleState { status } }
  }
}"""
CHECKS = """
query Checks($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode { assetChecksOrError { ... on AssetChecks
    { checks { name } } } } }
}"""


def graphql(base: str, query: str, variables: dict) -> dict:
    reply = get_json(f"{base}/graphql", {"query": query, "variables": variables})
    assert "errors" not in reply, reply["errors"]
    return reply["data"]


def run_status(base: str, run_id: str) -> dict:
    return graphql(base, STATUS, {"id": run_id})["runOrError"]


def wait_for_run(base: str, run_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = run_status(base, run_id)
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return run
        time.sleep(2)
    raise AssertionError(f"run {run_id} did not finish in {timeout:.0f} s")


def launch(base: str) -> str:
    launched = graphql(
        base, LAUNCH, {"params": {"selector": {**LOCATION, "jobName": "full_pipeline"}, "runConfigData": {}}}
    )
    assert launched["launchRun"]["__typename"] == "LaunchRunSuccess", launched
    return launched["launchRun"]["run"]["runId"]


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
)
def test_dagster_ui_runs_the_nightly_job_and_renders_the_asset_graph(tmp_path):
    from playwright.sync_api import sync_playwright

    home, port = tmp_path / "home", free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, COURSEPILOT_SYNTHETIC_SIZE="XS", COURSEPILOT_HOME=str(home))
    command = [str(Path(sys.executable).parent / "coursepilot"), "ui", "--port", str(port)]
    with serving(command, f"{base}/server_info", timeout=180, env=env, log=tmp_path / "dagster-dev.log"):
        schedule = graphql(base, SCHEDULE, {"selector": {**LOCATION, "scheduleName": "nightly_retrain"}})[
            "scheduleOrError"
        ]
        assert schedule == {
            "cronSchedule": "0 2 * * *",
            "executionTimezone": "UTC",
            "scheduleState": {"status": "RUNNING"},
        }
        node = graphql(base, CHECKS, {"key": {"path": ["interactions"]}})["assetNodeOrError"]
        checks = {c["name"] for c in node["assetChecksOrError"]["checks"]}
        assert {"unique_key", "value_ranges", "null_rates", "referential_integrity"} <= checks

        # the run queue lets one run at a time write the warehouse
        run_id, second = launch(base), launch(base)
        while run_status(base, run_id)["status"] in ("QUEUED", "NOT_STARTED", "STARTING"):
            time.sleep(0.5)
        assert run_status(base, second)["status"] == "QUEUED"
        first, later = wait_for_run(base, run_id), wait_for_run(base, second)
        log = (tmp_path / "dagster-dev.log").read_text()[-4000:]
        assert first["status"] == later["status"] == "SUCCESS", log
        assert later["startTime"] >= first["endTime"]
        assert (home / "warehouse.duckdb").exists() and (home / "reports" / "latest" / "report.md").exists()

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{base}/asset-groups", wait_until="networkidle")  # global lineage: one box per group
            for group in ("source_data", "recommenders", "peers", "evaluation"):
                page.get_by_text(group, exact=True).first.wait_for(timeout=60_000)
            page.goto(f"{base}/locations/coursepilot/asset-groups/recommenders", wait_until="networkidle")
            for asset in ("als_model", "hybrid_model", "recommender"):
                page.get_by_text(asset, exact=True).first.wait_for(timeout=60_000)
            if page.get_by_text(
                "Skip", exact=True
            ).is_visible():  # the webserver's first-visit newsletter dialog
                page.get_by_text("Skip", exact=True).click()
            page.screenshot(path=str(tmp_path / "asset-graph.png"))
            page.goto(f"{base}/runs/{run_id}", wait_until="networkidle")
            page.get_by_text("Success", exact=False).first.wait_for(timeout=60_000)
            browser.close()
    assert Path(tmp_path / "asset-graph.png").stat().st_size > 10_000
