"""A Dagster logger that turns run events into a progress bar and one line per step."""

from __future__ import annotations

import logging

from dagster import LoggerDefinition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class StepProgress(logging.Handler):
    """Advances a rich progress bar on each finished step; prints step results and asset log lines."""

    def __init__(self, console: Console, total_steps: int, level: int = logging.INFO):
        super().__init__(logging.DEBUG)
        self.console = console
        self.min_level = level
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("starting", total=total_steps)
        self.not_run = (
            0  # steps Dagster skipped because a step they need failed: one summary line, not one each
        )

    def __enter__(self) -> "StepProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()
        if self.not_run:
            self.console.print(f"  [yellow]{self.not_run} later steps not run: a step they need failed[/]")

    def emit(self, record: logging.LogRecord) -> None:
        meta = record.__dict__.get("dagster_meta") or {}
        event, step = meta.get("dagster_event"), meta.get("step_key")
        kind = event.event_type_value if event is not None else None
        message = meta.get("orig_message") or record.getMessage()
        if kind == "STEP_START":
            self.progress.update(self.task, description=f"running {step}")
        elif kind == "STEP_SUCCESS":
            self.progress.advance(self.task)
            self.console.print(f"[green]✓[/] {step}  [dim]{message.rsplit(' in ', 1)[-1].rstrip('.')}[/]")
        elif kind == "STEP_FAILURE":
            self.progress.advance(self.task)
            self.console.print(f"[red]✗ {step} failed[/]")
        elif kind == "ASSET_CHECK_EVALUATION" and "failed" in message:
            self.console.print(f"[red]  {message}[/]")
        elif (
            kind is None
            and message.startswith("Dependencies for step ")
            and message.endswith("Not executing.")
        ):
            self.not_run += 1
        elif kind is None and step and record.levelno >= self.min_level:
            style = "yellow" if record.levelno >= logging.WARNING else "dim"
            self.console.print(f"  [{style}]{step}: {message}[/]")


def progress_logger(handler: StepProgress) -> LoggerDefinition:
    """A logger definition that sends every run event to ``handler``."""

    def make(_init_context) -> logging.Logger:
        log = logging.Logger("coursepilot.progress", level=logging.DEBUG)
        log.addHandler(handler)
        return log

    return LoggerDefinition(make, description="rich progress bar and one line per step")
