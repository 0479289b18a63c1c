"""Nightly retraining and the weekly full rebuild, each on a cron schedule (on by default in `dagster
dev`)."""

from __future__ import annotations

import os

from dagster import DefaultScheduleStatus, ScheduleDefinition

CRON_ENV, TIMEZONE_ENV, WEEKLY_CRON_ENV = (
    "COURSEPILOT_NIGHTLY_CRON",
    "COURSEPILOT_TIMEZONE",
    "COURSEPILOT_WEEKLY_CRON",
)


def nightly_schedule(job) -> ScheduleDefinition:
    """``0 2 * * *`` in UTC unless ``COURSEPILOT_NIGHTLY_CRON`` / ``COURSEPILOT_TIMEZONE`` say otherwise."""
    return ScheduleDefinition(
        name="nightly_retrain",
        job=job,
        cron_schedule=os.environ.get(CRON_ENV, "0 2 * * *"),
        execution_timezone=os.environ.get(TIMEZONE_ENV, "UTC"),
        default_status=DefaultScheduleStatus.RUNNING,
        description="Retrain the serving path nightly on new data with the last tuned settings; a new "
        "registry version through the gate.",
    )


def weekly_schedule(job) -> ScheduleDefinition:
    """``0 3 * * 0`` (Sunday) in UTC unless ``COURSEPILOT_WEEKLY_CRON`` / ``COURSEPILOT_TIMEZONE`` say
    otherwise."""
    return ScheduleDefinition(
        name="weekly_full",
        job=job,
        cron_schedule=os.environ.get(WEEKLY_CRON_ENV, "0 3 * * 0"),
        execution_timezone=os.environ.get(TIMEZONE_ENV, "UTC"),
        default_status=DefaultScheduleStatus.RUNNING,
        description="Rematerialize every asset weekly: retuning, the comparison models and the evaluation "
        "report.",
    )
