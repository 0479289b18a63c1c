"""What the peer stage reads from the warehouse: training rows with course levels, course ids and durations,
and the learning state and profiles earlier peer assets wrote."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..splits import train_interactions_sql
from ..warehouse import columns

TRAIN_ROWS_TABLES = ("split", "course_labels", "courses")  # what train_rows_sql reads


def train_rows_sql(con) -> str:
    """The SQL of :func:`train_with_courses`: every training row with its course's difficulty (and
    duration)."""
    duration = ", c.duration_min" if "duration_min" in columns(con, "courses") else ""
    return (
        f"SELECT i.*, l.difficulty{duration} FROM ({train_interactions_sql(con)}) i "
        "JOIN course_labels l USING (course_id) JOIN courses c USING (course_id)"
    )


def train_with_courses(con, learners: np.ndarray | None = None) -> pd.DataFrame:
    """Training interactions with the course difficulty (and duration); of ``learners`` only when given. The
    input of :func:`~coursepilot.peers.state.learner_state`."""
    query = train_rows_sql(con)
    if learners is None:
        return con.execute(query).df()
    con.register("tuning_learners", pd.DataFrame({"learner_id": learners}))
    try:
        return con.execute(query + " WHERE i.learner_id IN (SELECT learner_id FROM tuning_learners)").df()
    finally:
        con.unregister("tuning_learners")


def course_ids(con) -> np.ndarray:
    """Every course id, sorted: the columns of the peer stage's matrices."""
    return np.asarray(
        [r[0] for r in con.execute("SELECT course_id FROM courses ORDER BY 1").fetchall()], dtype=object
    )


def course_durations(con, course_ids: np.ndarray) -> np.ndarray | None:
    """``duration_min`` of each of ``course_ids`` (NaN where unknown); None when the courses have none."""
    if "duration_min" not in columns(con, "courses"):
        return None
    duration = con.execute("SELECT course_id, duration_min FROM courses").df().set_index("course_id")
    return duration["duration_min"].reindex(course_ids).to_numpy(float)


def state_by_week(con) -> pd.DataFrame:
    """``learner_state``'s knowledge P, mean course level and target difficulty per learner and week, in
    that order."""
    return con.execute(
        "SELECT learner_id, week, P, level, target_difficulty FROM learner_state ORDER BY learner_id, week"
    ).df()


LAST_PROFICIENCY_SQL = (
    "SELECT learner_id, D FROM learner_state "
    "QUALIFY row_number() OVER (PARTITION BY learner_id ORDER BY week DESC) = 1"
)
"""Each learner's proficiency D in their last window."""


def last_proficiency(con, learner_ids: np.ndarray) -> np.ndarray:
    """Proficiency D (eq. 3) of each of ``learner_ids`` in their last window (NaN without a state row)."""
    state = con.execute(LAST_PROFICIENCY_SQL).df()
    return state.set_index("learner_id")["D"].reindex(learner_ids).to_numpy(float)


def profile_jobs(con) -> np.ndarray:
    """The job of each learner profile, in learner id order (the rows of
    :func:`~coursepilot.profiles.load_profiles`)."""
    return con.execute("SELECT job FROM learner_profiles ORDER BY learner_id").df()["job"].to_numpy(object)
