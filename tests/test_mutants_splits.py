"""The split on a tiny hand-made warehouse (kills mutants of coursepilot/splits.py)."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from coursepilot.splits import SplitConfig, build_split, coded_interactions


def test_share_bounds_and_the_smallest_history_are_accepted():
    SplitConfig(test_share=0.0, cold_learner_share=0.0, cold_course_share=0.0, min_interactions=2)
    for share in ("test_share", "cold_learner_share", "cold_course_share"):
        with pytest.raises(ValueError, match=f"^{share} must be in"):
            SplitConfig(**{share: 1.0})
    with pytest.raises(
        ValueError, match=r"^min_interactions must be at least 2 \(one to train on, one to test\)$"
    ):
        SplitConfig(min_interactions=1)


@pytest.fixture
def untimed(tmp_path):
    """Learner u took courses a, b, c, d; v took a, b; no timestamp column."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE interactions (learner_id VARCHAR, course_id VARCHAR, rating DOUBLE)")
    con.execute(
        "INSERT INTO interactions VALUES "
        "('u','a',1),('u','b',2),('u','c',3),('u','d',4),('v','a',5),('v','b',1)"
    )
    yield con
    con.close()


def test_without_timestamps_the_split_is_seeded_and_holds_the_test_share(untimed):
    config = SplitConfig(test_share=0.5, min_interactions=3, cold_learner_share=0.0, cold_course_share=0.0)
    # u: 4 interactions, round(4 * 0.5) = 2 to test; v has 2 < min_interactions: all train
    assert build_split(untimed, config) == {"test": 2, "train": 4}
    rows = untimed.execute(
        "SELECT learner_id, split, count(*) FROM split GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    assert rows == [("u", "test", 2), ("u", "train", 2), ("v", "train", 2)]


def test_coded_interactions_carry_positions_and_the_other_columns_and_clean_up(untimed):
    build_split(untimed, SplitConfig(test_share=0.5, cold_learner_share=0.0, cold_course_share=0.0))
    frame = coded_interactions(
        untimed,
        ("train", "test"),
        np.array(["v", "u"], dtype=object),
        np.array(["d", "c", "b", "a"], dtype=object),
    )
    assert list(frame.columns) == ["row", "col", "rating"]
    assert frame.values.tolist() == [
        [0, 2, 1.0],
        [0, 3, 5.0],
        [1, 0, 4.0],
        [1, 1, 3.0],
        [1, 2, 2.0],
        [1, 3, 1.0],
    ]
    assert frame["row"].dtype == np.int32 and frame["col"].dtype == np.int32
    views = {
        r[0] for r in untimed.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    }
    assert not {"_coded_rows", "_coded_cols"} & {v.lower() for v in views}
    with pytest.raises(duckdb.CatalogException):
        untimed.execute("SELECT * FROM _coded_rows")
