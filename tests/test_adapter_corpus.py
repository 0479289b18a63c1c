"""Bad input in each adapter's own layout (ibm, elearning, oulad, synthetic, catalog): a clear, located
error."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from coursepilot.ingest import clean, write_raw
from coursepilot.schema import ValidationError
from coursepilot.sources import load_source

IBM = {
    "course_processed.csv": "COURSE_ID,TITLE,DESCRIPTION\nML0101EN,Machine learning,Intro to ML\n"
    "PY0101EN,Python,Basics\n",
    "ratings.csv": "user,item,rating\n1,ML0101EN,3\n2,PY0101EN,2\n2,ML0101EN,3\n",
}
MARS = {
    "items_en.csv": "item_id,name,description,Difficulty,Software,Theme,duration\n"
    "1,Excel basics,Sheets,Beginner,Excel,Office,600\n"
    "2,Python,Code,Advanced,Python,Programming,1200\n",
    "users_en.csv": "user_id,job\n10,analyst\n11,engineer\n",
    "explicit_ratings_en.csv": "user_id,item_id,watch_percentage,created_at,rating\n"
    "10,1,80,2020-01-01,8\n11,2,50,2020-01-02,6\n"
    "11,1,100,2020-01-03,9\n",
}
OULAD = {
    "courses.csv": "code_module,code_presentation,module_presentation_length\nAAA,2013J,268\nBBB,2014B,240\n",
    "studentInfo.csv": "code_module,code_presentation,id_student,gender,region,highest_education,"
    "imd_band,age_band,num_of_prev_attempts,studied_credits,disability,final_result\n"
    "AAA,2013J,1,M,East,A Level,90-100%,35-55,0,240,N,Pass\n"
    "BBB,2014B,1,M,East,A Level,90-100%,35-55,0,60,N,Fail\n"
    "BBB,2014B,2,F,Wales,HE,20-30%,0-35,0,60,N,Distinction\n",
    "assessments.csv": "code_module,code_presentation,id_assessment,assessment_type,date,weight\n"
    "AAA,2013J,7,TMA,19,100\n"
    "BBB,2014B,8,TMA,20,100\n",
    "studentAssessment.csv": "id_assessment,id_student,date_submitted,is_banked,score\n"
    "7,1,18,0,78\n8,1,20,0,40\n8,2,21,0,95\n",
}


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def load(fmt: str, path: Path):
    import duckdb

    con = duckdb.connect()
    try:
        write_raw(con, load_source(fmt, path))
        return clean(con)
    finally:
        con.close()


def located(fmt: str, path: Path) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        load(fmt, path)
    return caught.value


@pytest.mark.parametrize("fmt,files", [("ibm", IBM), ("elearning", MARS), ("oulad", OULAD)])
def test_the_valid_layouts_load(tmp_path, fmt, files):
    report = load(fmt, write(tmp_path, files))
    assert report.rows_out["interactions"] == 3


CASES = [
    # (format, base files, file to change, new content, rule, column, row)
    ("ibm", IBM, "ratings.csv", "user,item,rating\n1,ML0101EN,3\n2,PY0101EN,three\n", "type", "rating", 2),
    ("ibm", IBM, "ratings.csv", "user,item,rating\n", "non-empty file", None, None),
    ("ibm", IBM, "ratings.csv", "user;item;rating\n1;ML0101EN;3\n", "delimiter", "user", None),
    (
        "ibm",
        IBM,
        "course_processed.csv",
        "COURSE_ID,NAME,DESCRIPTION\nML0101EN,ML,Intro\n",
        "required column",
        "TITLE",
        None,
    ),
    (
        "elearning",
        MARS,
        "explicit_ratings_en.csv",
        "user_id,item_id,watch_percentage,created_at,rating\n10,1,180,2020-01-01,8\n",
        "range",
        "watch_pct",
        1,
    ),
    (
        "elearning",
        MARS,
        "explicit_ratings_en.csv",
        "user_id,item_id,watch_percentage,created_at,rating\n10,1,80,2020-01-01,11\n",
        "range",
        "rating",
        1,
    ),
    (
        "elearning",
        MARS,
        "items_en.csv",
        "item_id,name,description,Level,Software,Theme,duration\n1,A,B,Beginner,Excel,Office,60\n",
        "required column",
        "Difficulty",
        None,
    ),
    (
        "elearning",
        MARS,
        "items_en.csv",
        b"item_id,name,description,Difficulty,Software,Theme,duration\n1,Caf\xe9\xff,B,Beginner,E,O,60\n",
        "encoding",
        None,
        None,
    ),
    (
        "elearning",
        MARS,
        "items_en.csv",
        "item_id,name,description,Difficulty,Software,Theme,duration\n1,A,B,Beginner,E,O,-60\n",
        "range",
        "duration_min",
        1,
    ),
    (
        "oulad",
        OULAD,
        "studentAssessment.csv",
        "id_assessment,id_student,date_submitted,is_banked,score\n7,1,18,0,high\n",
        "type",
        "score",
        1,
    ),
    (
        "oulad",
        OULAD,
        "studentInfo.csv",
        "code_module,code_presentation,id_student\nAAA,2013J,1\n",
        "required column",
        "final_result",
        None,
    ),
    ("oulad", OULAD, "courses.csv", "", "non-empty file", None, None),
]


@pytest.mark.parametrize(
    "fmt,files,name,content,rule,column,row", CASES, ids=[f"{c[0]}-{c[2]}-{c[4]}" for c in CASES]
)
def test_bad_input_in_each_adapter_layout(tmp_path, fmt, files, name, content, rule, column, row):
    err = located(fmt, write(tmp_path, {**files, name: content}))
    assert (err.rule, Path(err.file).name) == (rule, name), str(err)
    if column is not None:
        assert err.column == column, str(err)
    if row is not None:
        assert err.row == row, str(err)
    assert name in str(err) and rule in str(err)


def synthetic(folder: Path, interactions: pd.DataFrame | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"learner_id": ["a", "b"]}).to_parquet(folder / "learners.parquet")
    pd.DataFrame({"course_id": ["c1", "c2"], "title": ["One", "Two"]}).to_parquet(folder / "courses.parquet")
    (
        interactions
        if interactions is not None
        else pd.DataFrame({"learner_id": ["a", "b"], "course_id": ["c1", "c2"]})
    ).to_parquet(folder / "interactions.parquet")
    return folder


def test_synthetic_layout_bad_inputs(tmp_path):
    assert load("synthetic", synthetic(tmp_path / "ok")).rows_out["interactions"] == 2
    err = located(
        "synthetic", synthetic(tmp_path / "renamed", pd.DataFrame({"learner_id": ["a"], "course": ["c1"]}))
    )
    assert (err.rule, Path(err.file).name, err.column) == (
        "required column",
        "interactions.parquet",
        "course_id",
    )
    folder = synthetic(tmp_path / "truncated")
    data = (folder / "courses.parquet").read_bytes()
    (folder / "courses.parquet").write_bytes(data[: len(data) // 2])
    err = located("synthetic", folder)
    assert (err.rule, Path(err.file).name) == ("parquet", "courses.parquet")
    err = located(
        "synthetic",
        synthetic(tmp_path / "orphans", pd.DataFrame({"learner_id": ["a", "zz"], "course_id": ["c1", "c9"]})),
    )
    assert (err.rule, Path(err.file).name, err.column, err.row) == (
        "referential integrity",
        "interactions.parquet",
        "learner_id",
        2,
    )


def test_catalog_empty_file(tmp_path):
    (tmp_path / "edx.csv").write_text("")
    err = located("catalog", tmp_path / "edx.csv")
    assert (err.rule, Path(err.file).name) == ("non-empty file", "edx.csv")
