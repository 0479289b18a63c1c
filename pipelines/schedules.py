"""Nightly retraining: the whole asset graph on a cron schedule (on by default in `dagster dev`)."""

from __future__ import annotations

import os

from dagster import DefaultScheduleStatus, ScheduleDefinition

CRON_ENV, TIMEZONE_ENV = "COURSEPILOT_NIGHTLY_CRON", "COURSEPILOT_TIMEZONE"


def nightly_schedule(job) -> ScheduleDefinition:
    """``0 2 * * *`` in UTC unless ``COURSEPILOT_NIGHTLY_CRON`` / ``COURSEPILOT_TIMEZONE`` say otherwise."""
    return ScheduleDefinition(
        name="nightly_retrain", job=job, cron_schedule=os.environ.get(CRON_ENV, "0 2 * * *"),
        execution_timezone=os.environ.get(TIMEZONE_ENV, "UTC"), default_status=DefaultScheduleStatus.RUNNING,
        description="Rematerialize every asset nightly: new data, retrained models, a new registry version through the gate.")
