"""Every adapter on the real files in ../shared/datasets, and on small files of the shapes not shipped
there."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from coursepilot.cleaning import Policy
from coursepilot.ingest import clean, write_raw
from coursepilot.sources import load_source
from coursepilot.warehouse import columns, row_count

from .conftest import dataset


def ingest(con, source, policy=Policy()):
    write_raw(con, source)
    return clean(con, policy)


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_synthetic_folder(con, xs_folder):
    source = load_source("synthetic", xs_folder)
    report = ingest(con, source)
    assert report.rows_out == {"learners": 800, "courses": 80, "interactions": 12_000}
    assert report.repairs == []
    assert set(source.truth) == {"truth_learners", "truth_courses"}
    assert row_count(con, "truth_learners") == 800


def test_elearning_real_mars_tables(con):
    source = load_source("elearning", dataset("mars-elearning"))
    report = ingest(con, source)
    assert report.rows_in == {"learners": 9902, "courses": 1167, "interactions": 3659}
    # SOURCE.md: 4 duplicate (user, item) pairs, kept once each (the most recent)
    assert report.rows_out["interactions"] == 3655
    assert [r.count for r in report.repairs if r.rule == "duplicate key"] == [4]
    assert con.execute(
        "SELECT count(DISTINCT learner_id), count(DISTINCT course_id) FROM interactions"
    ).fetchone() == (822, 776)
    levels = dict(con.execute("SELECT difficulty, count(*) FROM courses GROUP BY 1").fetchall())
    assert levels == {"beginner": 272, "intermediate": 164, "advanced": 39, None: 692}
    assert con.execute("SELECT min(rating), max(rating), max(watch_pct) FROM interactions").fetchone() == (
        1,
        10,
        100,
    )
    theme = con.execute("SELECT theme FROM courses WHERE course_id = '511'").fetchone()[0]
    assert theme == "Share; Produce; Organize"


def test_elearning_implicit_views_are_merged(tmp_path, con):
    mars = dataset("mars-elearning")
    for name in ("items_en.csv", "users_en.csv", "explicit_ratings_en.csv"):
        (tmp_path / name).symlink_to(mars / name)
    write_csv(
        tmp_path / "implicit_ratings_en.csv",
        pd.DataFrame(
            {
                "item_id": [510, 510, 511],
                "user_id": [224557, 224557, 384],
                "created_at": ["2018-09-27 10:00:00", "2018-09-29 10:00:00", "2019-01-01 08:00:00"],
            }
        ),
    )
    ingest(con, load_source("elearning", tmp_path))
    assert row_count(con, "interactions") == 3656  # one view-only pair added
    clicks = dict(
        con.execute(
            "SELECT learner_id || '/' || course_id, clicks FROM interactions WHERE clicks > 0"
        ).fetchall()
    )
    assert clicks == {"224557/510": 2, "384/511": 1}
    assert con.execute("SELECT rating FROM interactions WHERE learner_id = '384'").fetchone() == (None,)


def test_elearning_kaggle_joined_files(tmp_path, con):
    row = dict(
        name="Share documents",
        description="How to share",
        duration=176.0,
        Difficulty="Beginner",
        Software="['OneDrive']",
        theme="['Share']",
        watch_percentage=100,
        rating=10,
    )
    train = pd.DataFrame(
        [dict(user_id=1, item_id=512, job="accounting", **row), dict(user_id=2, item_id=512, job=None, **row)]
    )
    test = pd.DataFrame(
        [dict(user_id=1, item_id=513, job="accounting", **{**row, "name": "Recycle bin", "rating": 4})]
    )
    write_csv(tmp_path / "Train.csv", train)
    write_csv(tmp_path / "Test.csv", test)
    ingest(con, load_source("elearning", tmp_path))
    assert (
        row_count(con, "courses") == 2
        and row_count(con, "learners") == 2
        and row_count(con, "interactions") == 3
    )
    assert con.execute("SELECT job FROM learners WHERE learner_id = '1'").fetchone() == ("accounting",)
    assert con.execute("SELECT duration_min FROM courses WHERE course_id = '512'").fetchone()[
        0
    ] == pytest.approx(176 / 60)


def test_ibm_real_catalogue_and_profiles(con):
    report = ingest(con, load_source("ibm", dataset("ibm-ml321en")))
    assert report.rows_out == {"learners": 33901, "courses": 307, "interactions": 0}
    assert "interest_Python" in columns(con, "learners")
    assert con.execute("SELECT theme FROM courses WHERE course_id = 'ML0122EN'").fetchone() == (
        "Python; MachineLearning; DataScience",
    )


def test_ibm_with_enrollment_ratings(tmp_path, con):
    ibm = dataset("ibm-ml321en")
    for name in ("course_processed.csv", "course_genre.csv", "user_profile.csv"):
        (tmp_path / name).symlink_to(ibm / name)
    write_csv(
        tmp_path / "ratings.csv",
        pd.DataFrame(
            {"user": [2, 2, 4], "item": ["ML0122EN", "ML0201EN", "ML0122EN"], "rating": [3.0, 2.0, 3.0]}
        ),
    )
    ingest(con, load_source("ibm", tmp_path))
    rows = con.execute(
        "SELECT learner_id, course_id, rating, completed FROM interactions ORDER BY 1, 2"
    ).fetchall()
    assert rows == [("2", "ML0122EN", 3.0, True), ("2", "ML0201EN", 2.0, False), ("4", "ML0122EN", 3.0, True)]


def test_ibm_ratings_without_profiles_derive_learners(tmp_path, con):
    ibm = dataset("ibm-ml321en")
    (tmp_path / "course_processed.csv").symlink_to(ibm / "course_processed.csv")
    write_csv(
        tmp_path / "ratings.csv",
        pd.DataFrame({"user": [7, 8], "item": ["ML0122EN", "ML0122EN"], "rating": [3.0, 3.0]}),
    )
    ingest(con, load_source("ibm", tmp_path))
    assert row_count(con, "learners") == 2


def test_oulad_real_tables(con):
    report = ingest(con, load_source("oulad", dataset("oulad")))
    assert report.rows_out == {"learners": 28785, "courses": 22, "interactions": 32593}
    completed = con.execute("SELECT sum(CASE WHEN completed THEN 1 ELSE 0 END) FROM interactions").fetchone()[
        0
    ]
    assert completed == 12361 + 3024  # Pass + Distinction
    graded = con.execute("SELECT count(grade), min(grade), max(grade) FROM interactions").fetchone()
    assert graded[0] > 20_000 and 0 <= graded[1] and graded[2] <= 100
    first = con.execute(
        "SELECT ts FROM interactions WHERE learner_id = '11391' AND course_id = 'AAA-2013J'"
    ).fetchone()[0]
    assert str(first.date()) == "2013-04-25"  # 1 October 2013 minus 159 days


def test_oulad_vle_clicks(tmp_path, con):
    oulad = dataset("oulad")
    for file in oulad.glob("*.csv"):
        (tmp_path / file.name).symlink_to(file)
    write_csv(
        tmp_path / "studentVle.csv",
        pd.DataFrame(
            {
                "code_module": ["AAA", "AAA"],
                "code_presentation": ["2013J", "2013J"],
                "id_student": [11391, 11391],
                "id_site": [546943, 546712],
                "date": [-5, 3],
                "sum_click": [4, 6],
            }
        ),
    )
    ingest(con, load_source("oulad", tmp_path))
    assert con.execute(
        "SELECT clicks FROM interactions WHERE learner_id = '11391' AND course_id = 'AAA-2013J'"
    ).fetchone() == (10,)


def test_catalog_real_edx(con):
    report = ingest(con, load_source("catalog", dataset("edx-catalog")))
    assert report.rows_in["courses"] == 975
    assert report.rows_out == {"learners": 0, "courses": 974, "interactions": 0}  # one repeated course URL
    levels = dict(con.execute("SELECT difficulty, count(*) FROM courses GROUP BY 1").fetchall())
    assert levels["advanced"] in (86, 87) and levels["beginner"] in (620, 621)


def test_catalog_coursera_format(tmp_path, con):
    write_csv(
        tmp_path / "Coursera.csv",
        pd.DataFrame(
            {
                "Course Name": ["Write Professional Emails", "Deep Learning"],
                "University": ["Georgia Tech", "DeepLearning.AI"],
                "Difficulty Level": ["Beginner", "Not Calibrated"],
                "Course Rating": ["4.8", "Not Calibrated"],
                "Course URL": [
                    "https://www.coursera.org/learn/professional-emails",
                    "https://www.coursera.org/learn/dl/",
                ],
                "Course Description": ["Write better emails.", "Neural networks."],
                "Skills": ["writing  email", "python"],
            }
        ),
    )
    ingest(con, load_source("catalog", tmp_path / "Coursera.csv"))
    rows = con.execute("SELECT course_id, difficulty, avg_rating FROM courses ORDER BY 1").fetchall()
    assert rows == [("dl", None, None), ("professional-emails", "beginner", 4.8)]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_generic_mapping(tmp_path, con, suffix):
    events = pd.DataFrame(
        {
            "user": ["u1", "u2", "u2"],
            "item": ["c1", "c1", "c2"],
            "stars": [4, 5, 2],
            "seen": [0.5, 1.0, 0.25],
            "time": ["2024-01-01", "2024-01-02", "2024-01-03"],
        }
    )
    courses = pd.DataFrame(
        {"id": ["c1", "c2"], "name": ["Intro", "Deep"], "level": ["easy", "hard"], "lang": ["en", "fr"]}
    )
    if suffix == "parquet":
        events.to_parquet(tmp_path / "events.parquet")
        courses.to_parquet(tmp_path / "courses.parquet")
    else:
        write_csv(tmp_path / "events.csv", events)
        write_csv(tmp_path / "courses.csv", courses)
    (tmp_path / "mapping.yaml").write_text(f"""
rating_scale: [1, 5]
watch_scale: 1
courses:
  file: courses.{suffix}
  columns: {{course_id: id, title: name, difficulty: level}}
  values: {{difficulty: {{easy: beginner, hard: advanced}}}}
  keep: [lang]
interactions:
  file: events.{suffix}
  columns: {{learner_id: user, course_id: item, rating: stars, watch_pct: seen, ts: time}}
""")
    ingest(con, load_source("generic", tmp_path / "mapping.yaml"))
    assert con.execute("SELECT course_id, difficulty, lang FROM courses ORDER BY 1").fetchall() == [
        ("c1", "beginner", "en"),
        ("c2", "advanced", "fr"),
    ]
    assert con.execute("SELECT sum(watch_pct) FROM interactions").fetchone()[0] == pytest.approx(175.0)
    assert row_count(con, "learners") == 2


def test_generic_csv_ids_that_read_as_missing_stay_ids(tmp_path, con):
    """ "NA", "null" and "None" are ids in an id column of a CSV; elsewhere "NA" is a missing value."""
    (tmp_path / "events.csv").write_text("user,item,stars\nNA,null,4\nNone,null,NA\nNA,c2,5\n")
    (tmp_path / "courses.csv").write_text("id,name\nnull,Intro\nc2,Deep\n")
    (tmp_path / "mapping.yaml").write_text("""
rating_scale: [1, 5]
courses:
  file: courses.csv
  columns: {course_id: id, title: name}
interactions:
  file: events.csv
  columns: {learner_id: user, course_id: item, rating: stars}
""")
    ingest(con, load_source("generic", tmp_path / "mapping.yaml"))
    rows = con.execute("SELECT learner_id, course_id, rating FROM interactions ORDER BY 1, 2").fetchall()
    assert rows == [("NA", "c2", 5.0), ("NA", "null", 4.0), ("None", "null", None)]
    assert con.execute("SELECT course_id FROM courses ORDER BY 1").fetchall() == [("c2",), ("null",)]


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown source format"):
        load_source("moodle", tmp_path)
