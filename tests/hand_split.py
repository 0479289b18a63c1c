"""Hand-made splits, for tests that build a warehouse without the split step."""

from __future__ import annotations


def carry_rows(con) -> None:
    """Give ``split`` (learner_id, course_id and split, as a test wrote it) every column of those
    interactions, as :func:`~coursepilot.splits.build_split` stores it."""
    con.execute(
        "CREATE OR REPLACE TABLE split AS SELECT i.*, s.split FROM interactions i "
        "JOIN (SELECT learner_id, course_id, split FROM split) s USING (learner_id, course_id)"
    )
