"""Run the whole asset graph in-process against the project's Dagster instance, then summarise it.

Used by ``coursepilot run``; runs land in the same instance ``coursepilot ui`` shows.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
from pathlib import Path

from dagster import (
    DagsterExecutionInterruptedError,
    DagsterInstance,
    ExecuteInProcessResult,
    HookContext,
    HookDefinition,
    JobDefinition,
    failure_hook,
    success_hook,
)
from rich.console import Console
from rich.table import Table

from coursepilot import warehouse
from coursepilot.home import ProjectHome
from coursepilot.tracking import redact, tracking_uri
from resources import DatasetResource

from .definitions import FULL_JOB, build_definitions
from .progress import StepProgress, progress_logger
from .settings import Settings
from .threads import execute_in_threads

REPO_ROOT = Path(__file__).resolve().parents[1]


INSTANCE_CONFIG_ENV = "COURSEPILOT_DAGSTER_CONFIG"


def instance_config() -> Path:
    """The dagster.yaml to use: ``$COURSEPILOT_DAGSTER_CONFIG`` (e.g. deploy/postgres/dagster.yaml) or the
    local default."""
    chosen = os.environ.get(INSTANCE_CONFIG_ENV)
    path = Path(chosen).expanduser().resolve() if chosen else REPO_ROOT / "dagster.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{INSTANCE_CONFIG_ENV}={chosen}: no such file" if chosen else f"{path} is missing"
        )
    return path


def prepare_dagster_home(home: ProjectHome) -> Path:
    """Make ``home/dagster`` the DAGSTER_HOME, with the chosen instance ``dagster.yaml`` copied in."""
    home.ensure()
    shutil.copyfile(instance_config(), home.dagster / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home.dagster)
    return home.dagster


NOT_RETRIED = {"dagster/max_retries": "0"}
"""Tags of a ``coursepilot run`` run: it lives in this process only, so the daemon's run retries could not
re-run it."""


class InterruptWatch:
    """Whether SIGINT or SIGTERM reached this process, seen through Python's signal wakeup fd.

    Dagster turns an interrupt into an exception where it lands. Landing in a garbage-collector callback, that
    exception is ignored and the run goes on; landing in DuckDB, it becomes DuckDB's own "Query interrupted"
    error and fails one step only. The wakeup fd is written for every signal, whatever its handler does, so
    the hooks of
    :meth:`hooks` stop the run after the step the signal came in. While watching, an interrupt that Python
    ignores is not printed as a traceback either: the watch has seen it.
    """

    STOPPING = {signal.SIGINT, signal.SIGTERM}

    def __enter__(self) -> "InterruptWatch":
        self.reader, writer = os.pipe()
        for fd in (self.reader, writer):
            os.set_blocking(fd, False)
        self.previous = signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
        self.writer, self.received = writer, set()
        self.unraisable = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        return self

    def _unraisable(self, unraisable) -> None:
        if not isinstance(unraisable.exc_value, (KeyboardInterrupt, DagsterExecutionInterruptedError)):
            self.unraisable(unraisable)

    def __exit__(self, *exc) -> None:
        sys.unraisablehook = self.unraisable
        signal.set_wakeup_fd(self.previous)
        os.close(self.reader)
        os.close(self.writer)

    def stopping(self) -> bool:
        """Whether a stopping signal has come in since the watch began."""
        try:
            while chunk := os.read(self.reader, 512):
                self.received |= set(chunk)
        except BlockingIOError:
            pass
        return bool(self.received & self.STOPPING)

    def hooks(self) -> set[HookDefinition]:
        """A success and a failure hook for every step: each stops the run once a stopping signal has come
        in."""

        def stop(context: HookContext) -> None:
            if self.stopping():
                raise DagsterExecutionInterruptedError()

        return {
            success_hook(name="stop_on_interrupt_after_success")(stop),
            failure_hook(name="stop_on_interrupt_after_failure")(stop),
        }


def run_pipeline(
    home: ProjectHome,
    dataset: DatasetResource,
    console: Console,
    log_level: str = "INFO",
    job_name: str = FULL_JOB,
) -> ExecuteInProcessResult:
    """Materialize the job's assets (and run their checks) on ``dataset``, showing progress on ``console``."""
    prepare_dagster_home(home)
    job = build_definitions(home, dataset).resolve_job_def(job_name)
    with StepProgress(console, len(job.graph.node_defs), logging.getLevelName(log_level)) as handler:
        defs = build_definitions(home, dataset, loggers={"progress": progress_logger(handler)})
        with DagsterInstance.get() as instance, InterruptWatch() as watch:
            job = defs.resolve_job_def(job_name).with_hooks(watch.hooks())
            return execute_here(
                job, instance, {**(job.run_config or {}), "loggers": {"progress": {}}}, NOT_RETRIED
            )


def execute_here(
    job: JobDefinition, instance: DagsterInstance, run_config: dict, tags=None
) -> ExecuteInProcessResult:
    """Run ``job`` in this process: independent steps side by side on threads when the executor setting
    (``$COURSEPILOT_EXECUTOR``) is ``threads``, one step at a time otherwise."""
    if Settings.from_env().executor == "threads":
        return execute_in_threads(job, instance, run_config, tags)
    return job.execute_in_process(instance=instance, raise_on_error=False, tags=tags, run_config=run_config)


def interrupted(result: ExecuteInProcessResult) -> bool:
    """Whether SIGINT or SIGTERM stopped the run: Dagster then fails it as an unexpected termination."""
    failures = (event.event_specific_data for event in result.all_events if event.is_run_failure)
    return any(getattr(f.failure_reason, "value", None) == "UNEXPECTED_TERMINATION" for f in failures)


def failure_message(result: ExecuteInProcessResult) -> str:
    """The user-facing reason of a failed run: the first failed step's (or resource's) error message."""
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        if error is None or not (
            event.is_step_failure or event.event_type_value in ("RESOURCE_INIT_FAILURE", "ENGINE_EVENT")
        ):
            continue
        while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
            error = error.cause
        return f"{'step ' + event.step_key if event.step_key else 'run'}: {error.message.strip()}"
    return "the run failed (see the Dagster run log)"


def print_summary(
    console: Console, home: ProjectHome, result: ExecuteInProcessResult, dataset: DatasetResource
) -> None:
    """Tables and row counts, check results, and where everything lives."""
    tables = Table(title=f"Warehouse tables ({dataset.describe()})")
    tables.add_column("table")
    tables.add_column("rows", justify="right")
    tables.add_column("columns")
    with warehouse.connect(home.warehouse, read_only=True) as con:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables ORDER BY table_name"
            ).fetchall()
        ]
        for name in names:
            cols = [c for c in warehouse.columns(con, name) if not c.startswith("_")]
            tables.add_row(name, f"{warehouse.row_count(con, name):,}", ", ".join(cols))
    console.print(tables)

    checks = Table(title="Asset checks")
    for col in ("asset", "check", "result"):
        checks.add_column(col)
    for evaluation in sorted(
        result.get_asset_check_evaluations(), key=lambda e: (e.asset_key.to_user_string(), e.check_name)
    ):
        checks.add_row(
            evaluation.asset_key.to_user_string(),
            evaluation.check_name,
            "[green]passed[/]" if evaluation.passed else "[red]failed[/]",
        )
    console.print(checks)

    console.print(f"[bold]Project home[/]  {home.root}")
    console.print(f"  warehouse (DuckDB)   {home.warehouse}")
    console.print(f"  Dagster runs/events  {home.dagster}  (run id {result.run_id})")
    console.print(f"  MLflow tracking      {redact(tracking_uri(home))}  (artifacts {home.mlflow_artifacts})")
    if (home.reports / "latest" / "report.md").exists():
        console.print(f"  evaluation report    {home.reports / 'latest' / 'report.md'}")
    console.print("Open the Dagster UI:  [bold]coursepilot ui[/]  (dagster dev on http://127.0.0.1:3000)")
    console.print(
        f"Open the MLflow UI:   [bold]mlflow ui --backend-store-uri {redact(tracking_uri(home))} --host "
        "127.0.0.1 --workers 1[/]"
    )
