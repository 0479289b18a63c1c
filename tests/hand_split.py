"""Hand-made splits, for tests that build a warehouse without the split step."""

from __future__ import annotations


def resplit(con) -> None:
    """``split`` again from ``interactions``, with every column of theirs, as the split step writes it before
    the stages run: each (learner_id, course_id) keeps the label the test gave it, and a new one trains."""
    con.execute(
        "CREATE OR REPLACE TABLE split AS SELECT i.*, coalesce(s.split, 'train') AS split "
        "FROM interactions i LEFT JOIN (SELECT learner_id, course_id, split FROM split) s "
        "USING (learner_id, course_id)"
    )
