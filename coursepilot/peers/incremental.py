"""The learning state updated for the learners whose training rows changed (:mod:`coursepilot.changes`).

Each learner's window aggregates read only their own rows, so the stored aggregates of unchanged learners
stand; what depends on everyone (engagement scaled over all windows) or on the weights is derived again
for all. The result equals a full recompute.
"""

from __future__ import annotations

import pandas as pd

from ..changes import Changes, kept_rows, learner_changes
from ..warehouse import columns
from .reads import train_rows_sql, train_with_courses
from .state import StateWeights, derive_state, window_aggregates

STATE_TABLE = "learner_state"
# bump when window_aggregates computes differently: every stored learner is then recomputed
STATE_VERSION = 1
DERIVED = ("E", "T", "P", "target_difficulty")


def _origin(con, query: str) -> pd.Timestamp | None:
    """Midnight of the first training ``ts`` (None without timestamps): where the weekly windows start."""
    if "ts" not in columns(con, "interactions"):
        return None
    first = con.execute(f"SELECT min(ts) FROM ({query}) q").fetchone()[0]
    return None if first is None else pd.Timestamp(first).normalize()


def updated_state(
    con, rating_scale, weights: StateWeights, incremental: bool = True
) -> tuple[pd.DataFrame, Changes]:
    """The learning state of every learner with training rows (as :func:`learner_state` computes it), and
    which learners it recomputed: those whose rows changed since ``learner_state`` was stored, or everyone
    when ``incremental`` is off, there is no stored state, or the windows' origin or the rating scale
    moved."""
    query = train_rows_sql(con)
    origin = _origin(con, query)
    context = f"state v{STATE_VERSION} origin {origin} scale {rating_scale}"
    changes = learner_changes(con, STATE_TABLE, query, context, incremental)
    if changes.everyone:
        everyone = window_aggregates(con.execute(query).df(), rating_scale, origin)
        return derive_state(everyone, weights), changes
    kept = kept_rows(con, STATE_TABLE, changes)
    kept = kept[[c for c in kept.columns if c not in DERIVED]]
    if len(changes.changed):
        fresh = window_aggregates(train_with_courses(con, changes.changed), rating_scale, origin)
        kept = pd.concat([kept, fresh[kept.columns]], ignore_index=True)
    aggregates = kept.sort_values(["learner_id", "week"], kind="stable", ignore_index=True)
    return derive_state(aggregates, weights), changes
