"""The evaluation split, shared by every model (DuckDB SQL, so it scales to 20M interactions).

Each interaction gets one of:
- ``cold_learner``: every interaction of a seeded sample of learners (only their profile is known);
- ``cold_course``: every interaction with a seeded sample of courses (removed from training);
- ``test``: per remaining learner with at least ``min_interactions``, the last ``test_share`` of
  their interactions by time (seeded random order where there are no timestamps), at least one
  and never all of them, so every test learner keeps something to train on;
- ``train``: everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from .warehouse import columns

SPLIT_TABLE = "split"


@dataclass(frozen=True)
class SplitConfig:
    test_share: float = 0.2
    min_interactions: int = 3
    cold_learner_share: float = 0.02
    cold_course_share: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("test_share", "cold_learner_share", "cold_course_share"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.min_interactions < 2:
            raise ValueError("min_interactions must be at least 2 (one to train on, one to test)")


def _sample(column: str, share: float, seed: int) -> str:
    """A deterministic, seeded coin flip per id (hash-based, independent of row order)."""
    return f"(hash({column} || ':' || {int(seed)}) % 1000000) < {int(round(share * 1_000_000))}"


def build_split(con: duckdb.DuckDBPyConnection, config: SplitConfig = SplitConfig()) -> dict[str, int]:
    """Replace the ``split`` table (learner_id, course_id, split) and return its counts."""
    order = "ts, " if "ts" in columns(con, "interactions") else ""
    seed = int(config.seed)
    con.execute(f"""
        CREATE OR REPLACE TABLE {SPLIT_TABLE} AS
        WITH flagged AS (
            SELECT learner_id, course_id,
                   {_sample('learner_id', config.cold_learner_share, seed)} AS cold_learner,
                   {_sample('course_id', config.cold_course_share, seed + 1)} AS cold_course,
                   {order}hash(learner_id || '/' || course_id || ':' || {seed}) AS tiebreak
            FROM interactions
        ), warm AS (
            SELECT *, row_number() OVER (PARTITION BY learner_id ORDER BY {order}tiebreak) AS k,
                   count(*) OVER (PARTITION BY learner_id) AS n
            FROM flagged WHERE NOT cold_learner AND NOT cold_course
        )
        SELECT learner_id, course_id, 'cold_learner' AS split FROM flagged WHERE cold_learner
        UNION ALL
        SELECT learner_id, course_id, 'cold_course' FROM flagged WHERE cold_course AND NOT cold_learner
        UNION ALL
        SELECT learner_id, course_id,
               CASE WHEN n >= ? AND k > n - least(n - 1, greatest(1, CAST(round(n * ?) AS BIGINT))) THEN 'test' ELSE 'train' END
        FROM warm
    """, [config.min_interactions, config.test_share])
    return dict(con.execute(f"SELECT split, count(*) FROM {SPLIT_TABLE} GROUP BY 1 ORDER BY 1").fetchall())


def train_interactions_sql() -> str:
    """SQL for the training interactions (all interaction columns), for stages that must not see test."""
    return (f"SELECT i.* FROM interactions i JOIN {SPLIT_TABLE} s USING (learner_id, course_id) "
            "WHERE s.split = 'train'")
