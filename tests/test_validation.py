"""Every validation rule with a bad-input case: the error names file, column, row and rule,
documented repairs are counted, and a failed load leaves the previous good tables untouched."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from coursepilot.cleaning import Policy
from coursepilot.ingest import clean, write_raw
from coursepilot.schema import MAX_TEXT_CHARS, ValidationError
from coursepilot.sources import load_source

COURSES = "id,name,level,minutes\nc1,Intro,beginner,30\nc2,Deep,advanced,90\n"
EVENTS = "user,item,stars,seen,time\nu1,c1,4,50,2024-01-01\nu2,c1,5,100,2024-01-02\nu2,c2,2,10,2024-01-03\n"
MAPPING = """
rating_scale: [1, 5]
courses: {file: courses.csv, columns: {course_id: id, title: name, difficulty: level, duration_min: minutes}}
interactions: {file: events.csv, columns: {learner_id: user, course_id: item, rating: stars,
  watch_pct: seen, ts: time}}
"""


def make(
    tmp_path: Path, courses: str = COURSES, events: str | bytes = EVENTS, mapping: str = MAPPING
) -> Path:
    (tmp_path / "courses.csv").write_text(courses)
    if isinstance(events, bytes):
        (tmp_path / "events.csv").write_bytes(events)
    else:
        (tmp_path / "events.csv").write_text(events)
    (tmp_path / "mapping.yaml").write_text(mapping)
    return tmp_path / "mapping.yaml"


def ingest(con, mapping: Path, policy: Policy = Policy()):
    write_raw(con, load_source("generic", mapping))
    return clean(con, policy)


def expect(
    con,
    mapping: Path,
    rule: str,
    file: str,
    column: str | None = None,
    row: int | None = None,
    policy: Policy = Policy(),
) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        ingest(con, mapping, policy)
    err = caught.value
    assert (err.rule, Path(err.file).name, err.column, err.row) == (rule, file, column, row), str(err)
    assert Path(err.file).name in str(err) and rule in str(err)
    return err


BAD_EVENTS = [
    # (events file text, rule, column, row)
    ("user,item,seen,time\nu1,c1,50,2024-01-01\n", "required column", "stars", None),
    ("user,item,stars,seen,time\nu1,c1,four,50,2024-01-01\n", "type", "rating", 1),
    ("user,item,stars,seen,time\nu1,c1,4,50,2024-01-01\nu2,c1,9,50,2024-01-01\n", "range", "rating", 2),
    ("user,item,stars,seen,time\nu1,c1,0,50,2024-01-01\n", "range", "rating", 1),
    ("user,item,stars,seen,time\nu1,c1,4,150,2024-01-01\n", "range", "watch_pct", 1),
    ("user,item,stars,seen,time\nu1,c1,4,-3,2024-01-01\n", "range", "watch_pct", 1),
    ("user,item,stars,seen,time\nu1,c1,4,inf,2024-01-01\n", "type", "watch_pct", 1),
    ("user,item,stars,seen,time\nu1,c1,4,50,not a date\n", "type", "ts", 1),
    ("user,item,stars,seen,time\nu1,c1,4,50,2999-01-01\n", "range", "ts", 1),
    ("user,item,stars,seen,time\nu1,c1,4,50,1900-01-01\n", "range", "ts", 1),
    (
        "user,item,stars,seen,time\nu1,c1,4,50,2024-01-01\n,c1,4,50,2024-01-01\n",
        "missing id",
        "learner_id",
        2,
    ),
    ("user,item,stars,seen,time\n" + "x" * 300 + ",c1,4,50,2024-01-01\n", "id length", "learner_id", 1),
]


@pytest.mark.parametrize("events,rule,column,row", BAD_EVENTS, ids=[f"{c}-{r}" for _, r, c, _ in BAD_EVENTS])
def test_bad_interaction_values(tmp_path, con, events, rule, column, row):
    expect(con, make(tmp_path, events=events), rule, "events.csv", column, row)


@pytest.mark.parametrize(
    "courses,rule,column,row",
    [
        ("id,name,level,minutes\nc1,Intro,beginner,-5\nc2,Deep,advanced,90\n", "range", "duration_min", 1),
        (
            "id,name,level,minutes\nc1,Intro,beginner,30\nc2,Deep,expert,90\n",
            "allowed values",
            "difficulty",
            2,
        ),
        ("id,name,level,minutes\nc1,,beginner,30\nc2,Deep,advanced,90\n", "required value", "title", 1),
        ("id,name,level,minutes\nc1,Intro,beginner,1e12\nc2,Deep,advanced,90\n", "range", "duration_min", 1),
    ],
)
def test_bad_course_values(tmp_path, con, courses, rule, column, row):
    expect(con, make(tmp_path, courses=courses), rule, "courses.csv", column, row)


@pytest.mark.parametrize(
    "content,rule",
    [
        (b"", "non-empty file"),
        (b"user,item,stars,seen,time\n", "non-empty file"),
        (b"user;item;stars;seen;time\nu1;c1;4;50;2024-01-01\n", "delimiter"),
        (b"user,item,stars,seen,time\nu1,c\xe9\xff1,4,50,2024-01-01\n", "encoding"),
    ],
)
def test_unreadable_files(tmp_path, con, content, rule):
    err = expect(
        con, make(tmp_path, events=content), rule, "events.csv", "user" if rule == "delimiter" else None
    )
    if rule == "encoding":
        assert "line 2" in str(err)


def test_truncated_parquet(tmp_path, con):
    pq.write_table(pa.table({"user": ["u1"] * 1000, "item": ["c1"] * 1000}), tmp_path / "events.parquet")
    data = (tmp_path / "events.parquet").read_bytes()
    (tmp_path / "events.parquet").write_bytes(data[: len(data) // 2])
    mapping = make(tmp_path, mapping=MAPPING.replace("events.csv", "events.parquet"))
    expect(con, mapping, "parquet", "events.parquet")


def test_missing_file_and_bad_mapping(tmp_path, con):
    expect(
        con,
        make(tmp_path, mapping=MAPPING.replace("events.csv", "nowhere.csv")),
        "file exists",
        "nowhere.csv",
    )
    with pytest.raises(ValidationError, match="'stars_given' is not a column|not a column of interactions"):
        ingest(con, make(tmp_path, mapping=MAPPING.replace("rating: stars", "stars_given: stars")))
    with pytest.raises(ValidationError, match="rating_scale"):
        ingest(con, make(tmp_path, mapping=MAPPING.replace("rating_scale: [1, 5]", "")))


def test_duplicates_are_repaired_or_refused_when_strict(tmp_path, con):
    events = EVENTS + "u1,c1,2,80,2024-02-01\n"  # a later row for (u1, c1)
    courses = COURSES + "c1,Intro again,beginner,30\n"
    mapping = make(tmp_path, courses=courses, events=events)
    report = ingest(con, mapping)
    assert {(r.table, r.rule, r.count) for r in report.repairs} == {
        ("courses", "duplicate key", 1),
        ("interactions", "duplicate key", 1),
    }
    # first kept
    assert con.execute("SELECT title FROM courses WHERE course_id = 'c1'").fetchone() == ("Intro",)
    # latest kept
    assert con.execute("SELECT rating FROM interactions WHERE learner_id = 'u1'").fetchone() == (2.0,)
    expect(con, mapping, "unique key", "courses.csv", "course_id", 3, Policy(strict=True))


def test_orphans_dropped_within_share_refused_beyond(tmp_path, con):
    many = EVENTS + "".join(f"u{i},c1,4,50,2024-01-01\n" for i in range(3, 40))
    mapping = make(tmp_path, events=many + "u1,c9,4,50,2024-01-01\n")
    report = ingest(con, mapping)
    assert [(r.rule, r.count) for r in report.repairs] == [("unknown course_id", 1)]
    expect(con, mapping, "referential integrity", "events.csv", "course_id", 41, Policy(strict=True))
    expect(
        con,
        make(tmp_path, events=EVENTS + "u1,c9,4,50,2024-01-01\n"),
        "referential integrity",
        "events.csv",
        "course_id",
        4,
    )


def test_long_text_truncated(tmp_path, con):
    courses = COURSES.replace("Deep", "D" * (MAX_TEXT_CHARS + 10))
    report = ingest(con, make(tmp_path, courses=courses))
    assert [(r.rule, r.count) for r in report.repairs] == [("text length", 1)]
    assert con.execute("SELECT max(length(title)) FROM courses").fetchone()[0] == MAX_TEXT_CHARS


def test_huge_and_mixed_ids_stay_text(tmp_path, con):
    events = (
        "user,item,stars,seen,time\n123456789012345678901234567890,c1,4,50,2024-01-01\n"
        "007,c1,5,100,2024-01-02\n"
    )
    ingest(con, make(tmp_path, events=events))
    ids = {r[0] for r in con.execute("SELECT learner_id FROM learners").fetchall()}
    assert ids == {"123456789012345678901234567890", "007"}


def test_failed_load_keeps_previous_tables(tmp_path, con):
    good = tmp_path / "good"
    bad = tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    ingest(con, make(good))
    before = {
        t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
        for t in ("learners", "courses", "interactions")
    }
    with pytest.raises(ValidationError):
        ingest(con, make(bad, events=EVENTS.replace("u2,c2,2", "u2,c2,7")))
    after = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in before}
    assert after == before


def test_missing_required_table_column_in_real_layout(tmp_path, con):
    (tmp_path / "course_processed.csv").write_text("COURSE_ID,TITLE\nA,Intro\n")
    with pytest.raises(ValidationError) as caught:
        load_source("ibm", tmp_path)
    assert caught.value.column == "DESCRIPTION" and caught.value.rule == "required column"


def test_catalog_unknown_level(tmp_path):
    pd.DataFrame({"title": ["A"], "Level": ["Expert-ish"], "course_url": ["https://x/a"]}).to_csv(
        tmp_path / "edx.csv", index=False
    )
    with pytest.raises(ValidationError) as caught:
        load_source("catalog", tmp_path / "edx.csv")
    assert (caught.value.column, caught.value.row) == ("Level", 1)
