"""Nightly retraining and the weekly full rebuild, each on a cron schedule (on by default in `dagster
dev`)."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleDefinition


def nightly_schedule(job, cron: str, timezone: str) -> ScheduleDefinition:
    """``job`` at ``cron`` in ``timezone`` (``Settings.nightly_cron``, default ``0 2 * * *`` UTC)."""
    return ScheduleDefinition(
        name="nightly_retrain",
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Retrain the serving path nightly on new data with the last tuned settings; a new "
        "registry version through the gate.",
    )


def weekly_schedule(job, cron: str, timezone: str) -> ScheduleDefinition:
    """``job`` at ``cron`` in ``timezone`` (``Settings.weekly_cron``, default ``0 3 * * 0``: Sundays, UTC)."""
    return ScheduleDefinition(
        name="weekly_full",
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Rematerialize every asset weekly: retuning, the comparison models and the evaluation "
        "report.",
    )
