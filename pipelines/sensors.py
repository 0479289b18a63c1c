"""Start the full job when the configured source files change (content fingerprint, not mtime)."""

from __future__ import annotations

from pathlib import Path

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from coursepilot.sources.base import fingerprint
from resources import DatasetResource


def source_files(dataset: DatasetResource) -> list[Path]:
    """The files of the configured source: the file itself, or every file under the folder (and the
    mapping)."""
    paths = [Path(p) for p in (dataset.path, dataset.mapping) if p]
    files = []
    for path in paths:
        files += (
            [path]
            if path.is_file()
            else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        )
    return files


def source_change_sensor(job, dataset: DatasetResource, interval_seconds: int = 60):
    @sensor(
        name="source_change",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Runs the full job when the source files' content fingerprint changes.",
    )
    def _sensor(context: SensorEvaluationContext):
        if dataset.format == "synthetic" and not dataset.path:
            return SkipReason("the source is the built-in synthetic generator: no files to watch")
        files = source_files(dataset)
        if not files:
            return SkipReason(f"no source files found at {dataset.path}")
        current = fingerprint(files)
        if context.cursor is None:
            context.update_cursor(current)
            return SkipReason(f"recorded the fingerprint of {len(files)} source files")
        if current == context.cursor:
            return SkipReason("source files unchanged")
        context.update_cursor(current)
        return RunRequest(run_key=current, tags={"coursepilot/trigger": "source_change"})

    return _sensor
