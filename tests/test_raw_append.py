"""A source that only grew is appended to the raw tables, and the warehouse equals one loaded afresh."""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from coursepilot.cleaning import Policy
from coursepilot.ingest import clean, grown_from, source_info, write_raw
from coursepilot.schema import ValidationError
from coursepilot.sources import SourceData, load_source
from coursepilot.synthetic.growth import append_growth

RAW = ("raw_learners", "raw_courses", "raw_interactions")


def _rows(con, table: str) -> list:
    return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def test_a_day_of_growth_is_appended_and_equals_a_fresh_load(tmp_path, xs_folder):
    folder = shutil.copytree(xs_folder, tmp_path / "source")
    con = duckdb.connect(str(tmp_path / "nightly.duckdb"))
    write_raw(con, load_source("synthetic", folder))
    assert source_info(con)["appended_to"] == {}
    before = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in RAW}
    append_growth(folder)
    write_raw(con, load_source("synthetic", folder))
    # new courses and interactions were appended; the learners' file did not grow and is written whole
    appended = source_info(con)["appended_to"]
    grown = ("raw_courses", "raw_interactions")
    assert {t: n for t, (n, _) in appended.items()} == {t: before[t] for t in grown}
    clean(con)
    fresh = duckdb.connect(str(tmp_path / "fresh.duckdb"))
    write_raw(fresh, load_source("synthetic", folder))
    clean(fresh)
    for table in (*RAW, "learners", "courses", "interactions"):
        assert _rows(con, table) == _rows(fresh, table), table


@pytest.mark.parametrize(
    "change",
    ["a stored row changed", "fewer rows", "another type", "another column"],
)
def test_anything_but_growth_is_not_an_append(con, change):
    stored = pa.table({"id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    con.register("stored", stored)
    con.execute("CREATE TABLE t AS SELECT * FROM stored")
    grown = pa.table({"id": ["b", "a", "c", "d"], "x": [2.0, 1.0, 3.0, 4.0]})
    assert grown_from(con, "t", grown).rows == 3  # the first rows as a multiset: their order is free
    incoming = {
        "a stored row changed": pa.table({"id": ["a", "b", "c", "d"], "x": [1.0, 2.5, 3.0, 4.0]}),
        "fewer rows": pa.table({"id": ["a", "b"], "x": [1.0, 2.0]}),
        "another type": pa.table({"id": ["a", "b", "c", "d"], "x": [1, 2, 3, 4]}),
        "another column": pa.table({"id": ["a", "b", "c", "d"], "y": [1.0, 2.0, 3.0, 4.0]}),
    }[change]
    assert grown_from(con, "t", incoming) is None
    assert grown_from(con, "missing", grown) is None


def _source(learners, courses, interactions) -> SourceData:
    """A source of hand-made rows in one file each, provenance as an adapter attaches it."""

    def frame(rows, columns, file):
        table = pd.DataFrame(rows, columns=columns)
        return table.assign(_file=file, _row=range(1, len(table) + 1))

    return SourceData(
        "test",
        frame(learners, ["learner_id", "job"], "learners.csv"),
        frame(courses, ["course_id", "title"], "courses.csv"),
        frame(interactions, ["learner_id", "course_id", "rating", "ts"], "interactions.csv"),
        (1.0, 5.0),
        [],
    )


def _cleaned(con) -> dict:
    return {t: _rows(con, t) for t in ("learners", "courses", "interactions")}


T = pd.Timestamp("2024-03-01")
LENIENT = Policy(max_orphan_share=0.5)  # the hand-made rows hold an orphan in five
LEARNERS = [("u1", "dev"), ("u2", "analyst"), ("u3", None)]
COURSES = [("c1", "SQL"), ("c2", "Python"), ("c3", "Statistics")]
INTERACTIONS = [
    ("u1", "c1", 4.0, T),
    ("u1", "c2", 3.0, T + pd.Timedelta(days=1)),
    ("u2", "c1", 5.0, T),
    ("u3", "c3", 2.0, T),
    ("ghost", "c2", 4.0, T),  # an orphan until a learner 'ghost' arrives
]


@pytest.mark.parametrize(
    "learners, interactions, grown",
    [
        # a later rating of a stored pair wins, an earlier one loses; a learner id seen before keeps its first
        # row; 'ghost' arrives, and their interaction stops being an orphan
        (
            [("u1", "manager"), ("ghost", "dev")],
            [("u1", "c1", 1.0, T + pd.Timedelta(days=5)), ("u2", "c1", 1.0, T - pd.Timedelta(days=5))],
            True,
        ),
        # an appended interaction of an unknown learner: orphans are a property of all rows: all are cleaned
        ([], [("nobody", "c1", 3.0, T)], False),
    ],
)
def test_cleaning_only_what_an_append_touched_equals_a_full_clean(tmp_path, learners, interactions, grown):
    con = duckdb.connect(str(tmp_path / "nightly.duckdb"))
    write_raw(con, _source(LEARNERS, COURSES, INTERACTIONS))
    assert not clean(con, LENIENT).grown
    later = _source(LEARNERS + learners, COURSES, INTERACTIONS + interactions)
    write_raw(con, later)
    report = clean(con, LENIENT)
    assert report.grown is grown
    if grown:  # only touched rows were read: u1's two and ghost's; every row of u1, u2's c1, ghost's
        assert report.rows_in == {"learners": 3, "courses": 0, "interactions": 6}
    fresh = duckdb.connect(str(tmp_path / "fresh.duckdb"))
    write_raw(fresh, later)
    clean(fresh, LENIENT)
    assert _cleaned(con) == _cleaned(fresh)
    # a second clean of the same rows is not an append: the raw tables did not grow since
    write_raw(con, later)
    assert not clean(con, LENIENT).grown and _cleaned(con) == _cleaned(fresh)


def test_an_appended_row_without_an_id_fails_as_a_full_clean_does(tmp_path):
    con = duckdb.connect(str(tmp_path / "nightly.duckdb"))
    write_raw(con, _source(LEARNERS, COURSES, INTERACTIONS))
    clean(con, LENIENT)
    stored = _cleaned(con)
    write_raw(con, _source(LEARNERS, COURSES, INTERACTIONS + [("u1", None, 3.0, T)]))
    with pytest.raises(ValidationError, match="empty"):
        clean(con, LENIENT)
    assert _cleaned(con) == stored  # the last good tables stand
    # the weekly run cleans every row whatever grew
    write_raw(con, _source(LEARNERS, COURSES + [("c4", "R")], INTERACTIONS))
    assert clean(con, LENIENT).grown and not clean(con, LENIENT, incremental=False).grown
