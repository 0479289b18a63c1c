"""The deployment settings the code location reads from the environment, each variable named once here."""

from __future__ import annotations

import os
from dataclasses import dataclass

EXECUTOR_ENV = "COURSEPILOT_EXECUTOR"
NIGHTLY_CRON_ENV = "COURSEPILOT_NIGHTLY_CRON"
WEEKLY_CRON_ENV = "COURSEPILOT_WEEKLY_CRON"
TIMEZONE_ENV = "COURSEPILOT_TIMEZONE"
MAX_MODEL_AGE_ENV = "COURSEPILOT_MAX_MODEL_AGE_HOURS"


@dataclass(frozen=True)
class Settings:
    """How the code location runs: the step executor, the two schedules and the champion's largest age."""

    executor: str = "threads"  # one of pipelines.definitions.EXECUTORS
    nightly_cron: str = "0 2 * * *"
    weekly_cron: str = "0 3 * * 0"  # Sundays
    timezone: str = "UTC"  # of both schedules
    max_model_age_hours: float = 48.0  # champion_freshness warns beyond it

    @classmethod
    def from_env(cls) -> "Settings":
        """The defaults, each overridden by its ``COURSEPILOT_*`` variable when that is set and not empty."""
        env, default = os.environ, cls()
        return cls(
            executor=env.get(EXECUTOR_ENV) or default.executor,
            nightly_cron=env.get(NIGHTLY_CRON_ENV) or default.nightly_cron,
            weekly_cron=env.get(WEEKLY_CRON_ENV) or default.weekly_cron,
            timezone=env.get(TIMEZONE_ENV) or default.timezone,
            max_model_age_hours=float(env.get(MAX_MODEL_AGE_ENV) or default.max_model_age_hours),
        )
