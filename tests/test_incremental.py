"""The learning state and the profiles updated only for learners whose inputs changed equal a full
recompute, and the fingerprints say who was recomputed (coursepilot/changes.py,
coursepilot/peers/incremental.py, coursepilot/profiles.py)."""

from __future__ import annotations

from dataclasses import asdict

import duckdb
import numpy as np
import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pytest

from coursepilot.changes import inputs_table, learner_changes
from coursepilot.peers.incremental import STATE_TABLE, updated_state
from coursepilot.peers.reads import train_with_courses
from coursepilot.peers.state import StateWeights, learner_state
from coursepilot.profiles import build_profiles, profile_context, profile_inputs_sql, profile_tables
from coursepilot.warehouse import Merge, read_rows_with_vectors, replace_tables, vector_column
from tests.hand_split import resplit

T0 = pd.Timestamp("2025-03-03")
SCALE = (1.0, 5.0)
WEIGHTS = StateWeights(delta=0.8, theta=0.5)


def _warehouse(learners: int = 30, courses: int = 12, seed: int = 0) -> duckdb.DuckDBPyConnection:
    """interactions, split (a tenth test), courses (duration) and course_labels (difficulty)."""
    rng = np.random.default_rng(seed)
    rows = [
        (f"u{u:02d}", f"c{c:02d}")
        for u in range(learners)
        for c in rng.choice(courses, rng.integers(2, 7), replace=False)
    ]
    interactions = pd.DataFrame(rows, columns=["learner_id", "course_id"]).assign(
        rating=rng.integers(1, 6, len(rows)).astype(float),
        watch_pct=rng.uniform(0, 100, len(rows)),
        ts=T0 + pd.to_timedelta(rng.integers(0, 60 * 24, len(rows)), unit="h"),
    )
    con = duckdb.connect()
    _table(con, "interactions", interactions)
    con.execute(
        "CREATE TABLE split AS SELECT *, "
        "CASE WHEN hash(learner_id || course_id) % 10 = 0 THEN 'test' ELSE 'train' END AS split "
        "FROM interactions"
    )
    ids = [f"c{c:02d}" for c in range(courses)]
    _table(con, "courses", pd.DataFrame({"course_id": ids, "duration_min": rng.uniform(30, 600, courses)}))
    levels = np.array(["beginner", "intermediate", "advanced"])[rng.integers(0, 3, courses)]
    _table(con, "course_labels", pd.DataFrame({"course_id": ids, "difficulty": levels}))
    return con


def _table(con, name: str, frame: pd.DataFrame) -> None:
    con.register("frame", frame)
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
    con.unregister("frame")


def _trained_on(con, course: str) -> set[str]:
    """The learners with a training row of ``course``."""
    return set(
        con.execute(
            "SELECT DISTINCT learner_id FROM split WHERE course_id = ? AND split = 'train'",
            [course],
        ).df()["learner_id"]
    )


def _run(con, incremental: bool = True, weights: StateWeights = WEIGHTS):
    """Update and store the state; (the stored state, the changes)."""
    update = updated_state(con, SCALE, weights, incremental)
    update.write(con)
    return _stored(con), update.changes


def _stored(con) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {STATE_TABLE} ORDER BY learner_id, week").df()


def _full(con) -> pd.DataFrame:
    return learner_state(train_with_courses(con), SCALE, WEIGHTS)


def _same(state: pd.DataFrame, full: pd.DataFrame) -> None:
    pdt.assert_frame_equal(
        state[full.columns].reset_index(drop=True), full.reset_index(drop=True), check_dtype=False
    )


def test_the_first_run_computes_everyone_and_a_rerun_without_changes_keeps_everyone():
    con = _warehouse()
    state, changes = _run(con)
    assert changes.reason == "no earlier run" and changes.kept == 0
    _same(state, _full(con))
    again, unchanged = _run(con)
    assert len(unchanged.changed) == 0 and unchanged.kept == 30 and not unchanged.everyone
    assert unchanged.metadata()["recomputed_learners"] == 0
    _same(again, _full(con))


def test_only_learners_whose_rows_changed_are_recomputed_and_the_state_equals_a_full_recompute():
    con = _warehouse()
    _run(con)
    # u03 takes a new course with a huge watch time (the engagement scale of everyone moves); u07's rating of
    # one course changes; u11 is gone; u99 is new
    con.execute(
        "INSERT INTO interactions VALUES ('u03', 'c11', 5.0, 100.0, ?), ('u99', 'c01', 2.0, 40.0, ?)",
        [T0 + pd.Timedelta(days=70), T0 + pd.Timedelta(days=3)],
    )
    con.execute("UPDATE courses SET duration_min = 5000 WHERE course_id = 'c11'")
    first = con.execute(
        "SELECT i.course_id FROM interactions i JOIN split s USING (learner_id, course_id) "
        "WHERE i.learner_id = 'u07' AND s.split = 'train' ORDER BY 1 LIMIT 1"
    ).fetchone()[0]
    con.execute(
        "UPDATE interactions SET rating = 6 - rating WHERE learner_id = 'u07' AND course_id = ?", [first]
    )
    con.execute("DELETE FROM interactions WHERE learner_id = 'u11'")
    resplit(con)
    takers = _trained_on(con, "c11")
    state, changes = _run(con)
    # the duration joined from courses is an input too: everyone who took c11 is recomputed
    assert set(changes.changed) == {"u03", "u07", "u99"} | takers
    assert changes.removed == 1 and changes.kept == 30 - len(takers | {"u03", "u07"}) - 1
    assert "u11" not in set(state["learner_id"])
    _same(state, _full(con))


def test_a_relabelled_course_recomputes_its_learners_and_an_earlier_first_week_recomputes_everyone():
    con = _warehouse()
    _run(con)
    con.execute(
        "UPDATE course_labels SET difficulty = CASE difficulty WHEN 'advanced' THEN 'beginner' "
        "ELSE 'advanced' END WHERE course_id = 'c00'"
    )
    takers = _trained_on(con, "c00")
    state, changes = _run(con)
    assert set(changes.changed) == takers and 0 < len(takers) < 30
    _same(state, _full(con))
    con.execute("INSERT INTO interactions VALUES ('u00', 'c11', 3.0, 50.0, ?)", [T0 - pd.Timedelta(days=30)])
    resplit(con)
    state, changes = _run(con)
    assert changes.everyone and changes.kept == 0
    _same(state, _full(con))


def test_a_change_inside_the_engagement_range_writes_only_the_changed_learners():
    con = _warehouse()
    _run(con)
    con.execute("UPDATE interactions SET rating = 6 - rating WHERE learner_id = 'u05'")
    resplit(con)
    update = updated_state(con, SCALE, WEIGHTS)
    assert update.merged and set(update.rows["learner_id"]) == {"u05"}
    update.write(con)
    _same(_stored(con), _full(con))
    # a longer course moves the range of E_raw: everyone's E is derived again
    con.execute("UPDATE courses SET duration_min = 5000 WHERE course_id = 'c03'")
    update = updated_state(con, SCALE, WEIGHTS)
    assert not update.merged and len(update.rows) == len(_stored(con))
    assert 0 < len(update.changes.changed) < 30
    update.write(con)
    _same(_stored(con), _full(con))
    # other weights: everyone is recomputed
    lighter = StateWeights(**{**asdict(WEIGHTS), "alpha": WEIGHTS.alpha / 2})
    state, changes = _run(con, weights=lighter)
    assert changes.everyone
    _same(state, learner_state(train_with_courses(con), SCALE, lighter))


def test_with_incremental_off_everyone_is_recomputed():
    con = _warehouse()
    _run(con)
    state, changes = _run(con, incremental=False)
    assert changes.reason == "incremental updates are off" and len(changes.changed) == 30
    _same(state, _full(con))


@pytest.mark.parametrize("drop", ["ts", "watch_pct"])
def test_sources_without_timestamps_or_watch_data_update_the_same_way(drop):
    con = _warehouse(seed=1)
    con.execute(f"ALTER TABLE interactions DROP COLUMN {drop}")
    resplit(con)
    _run(con)
    con.execute("UPDATE interactions SET rating = 6 - rating WHERE learner_id = 'u05'")
    resplit(con)
    state, changes = _run(con)
    assert "u05" in set(state["learner_id"]) and set(changes.changed) == {"u05"}
    _same(state, _full(con))


def _profile_warehouse(seed: int = 2) -> duckdb.DuckDBPyConnection:
    """learners (job, software), courses (theme), training rows and 8-d course and attribute embeddings."""
    con = _warehouse(seed=seed)
    rng = np.random.default_rng(seed)
    jobs, themes = ["analyst", "nurse", None], ["data", "health", "art"]
    _table(
        con,
        "learners",
        pd.DataFrame(
            {"learner_id": [f"u{u:02d}" for u in range(30)], "job": [jobs[u % 3] for u in range(30)]}
        ).assign(software=lambda f: np.where(np.arange(30) % 2, "excel", None)),
    )
    con.execute("ALTER TABLE courses ADD COLUMN theme VARCHAR")
    con.execute(
        "UPDATE courses SET theme = ['data', 'health', 'art'][1 + CAST(substr(course_id, 2) AS INT) % 3]"
    )
    vectors = lambda n: vector_column(rng.normal(size=(n, 8)).astype(np.float32))  # noqa: E731
    ids = con.execute("SELECT course_id FROM courses ORDER BY 1").df()["course_id"].tolist()
    _table(con, "course_embeddings", pa.table({"course_id": ids, "embedding": vectors(len(ids))}))
    values = [("job", "analyst"), ("job", "nurse"), ("software", "excel"), *(("theme", t) for t in themes)]
    _table(
        con,
        "attribute_embeddings",
        pa.table({"kind": [k for k, _ in values], "value": [v for _, v in values], "embedding": vectors(6)}),
    )
    return con


def _profiles(con, incremental: bool = True):
    """learner_profiles as the asset writes them, and the changes."""
    changes = learner_changes(
        con, "learner_profiles", profile_inputs_sql(con), profile_context(con, SCALE), incremental
    )
    learners, profiles = build_profiles(con, SCALE, None if changes.everyone else changes.changed)
    tables = {**profile_tables(learners, profiles), inputs_table("learner_profiles"): changes.fingerprints}
    merged = (
        None
        if changes.everyone
        else {"learner_profiles": Merge(tables.pop("learner_profiles"), changes.kept_ids())}
    )
    replace_tables(con, tables, merged)
    return changes


def _stored_profiles(con) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    return read_rows_with_vectors(
        con, "learner_profiles", "learner_id", ("desc", "theme"), ("job", "software")
    )


def test_profiles_are_rebuilt_for_changed_learners_only_and_equal_a_full_rebuild():
    con = _profile_warehouse()
    assert _profiles(con).reason == "no earlier run"
    # u04 takes a course, u08 changes job, u12's course c05 gets a new embedding (all who took c05), u30 is
    # new (no training rows), u29 leaves
    con.execute("INSERT INTO interactions VALUES ('u04', 'c11', 4.0, 80.0, ?)", [T0 + pd.Timedelta(days=61)])
    resplit(con)
    con.execute("UPDATE learners SET job = 'nurse' WHERE learner_id = 'u08' AND job IS DISTINCT FROM 'nurse'")
    con.execute("UPDATE learners SET job = 'analyst' WHERE learner_id = 'u08' AND job IS NULL")
    con.execute("UPDATE course_embeddings SET embedding = [1, 0, 0, 0, 0, 0, 0, 0] WHERE course_id = 'c05'")
    con.execute("DELETE FROM learners WHERE learner_id = 'u29'")
    con.execute("INSERT INTO learners VALUES ('u30', 'nurse', NULL)")
    c05 = set(
        con.execute(
            "SELECT learner_id FROM split WHERE course_id = 'c05' AND split = 'train' AND learner_id <> 'u29'"
        ).df()["learner_id"]
    )
    changes = _profiles(con)
    assert set(changes.changed) == {"u04", "u08", "u30"} | c05 and changes.removed == 1
    frame, vectors = _stored_profiles(con)
    assert len(frame) == 30 and "u29" not in set(frame["learner_id"])
    assert _profiles(con, incremental=False).everyone
    full_frame, full_vectors = _stored_profiles(con)
    pdt.assert_frame_equal(frame, full_frame)
    for part in ("desc", "theme"):
        np.testing.assert_allclose(vectors[part], full_vectors[part], atol=1e-6)


def test_a_new_theme_rebuilds_every_profile():
    con = _profile_warehouse()
    _profiles(con)
    con.execute("INSERT INTO attribute_embeddings VALUES ('theme', 'music', [0, 1, 0, 0, 0, 0, 0, 0])")
    changes = _profiles(con)
    assert changes.everyone and changes.kept == 0


def test_a_failed_merge_leaves_the_stored_table_and_its_fingerprints_as_they_were():
    con = duckdb.connect()
    _table(con, "t", pd.DataFrame({"learner_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]}))
    _table(con, "t_inputs", pd.DataFrame({"learner_id": ["a", "b", "c"], "fp": [1, 2, 3]}))
    new_inputs = pd.DataFrame({"learner_id": ["a", "b"], "fp": [1, 9]})
    with pytest.raises(duckdb.Error):  # the new rows carry a column t does not have
        replace_tables(
            con,
            {"t_inputs": new_inputs},
            {"t": Merge(pd.DataFrame({"learner_id": ["b"], "y": [5.0]}), ["a"])},
        )
    assert con.execute("SELECT * FROM t ORDER BY 1").fetchall() == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert con.execute("SELECT fp FROM t_inputs ORDER BY 1").fetchall() == [(1,), (2,), (3,)]
    # the same merge with the right columns: b replaced, c (gone) deleted, a kept
    replace_tables(
        con, {"t_inputs": new_inputs}, {"t": Merge(pd.DataFrame({"learner_id": ["b"], "x": [5.0]}), ["a"])}
    )
    assert con.execute("SELECT * FROM t ORDER BY 1").fetchall() == [("a", 1.0), ("b", 5.0)]
    # drop: stored rows of kept learners that match the condition go too
    replace_tables(
        con, {}, {"t": Merge(pd.DataFrame({"learner_id": ["c"], "x": [7.0]}), ["a", "b"], "x > 2")}
    )
    assert con.execute("SELECT * FROM t ORDER BY 1").fetchall() == [("a", 1.0), ("c", 7.0)]


def test_a_run_with_no_learners_stores_text_ids_and_the_next_run_compares_with_them():
    con = _warehouse()
    con.execute("CREATE TABLE saved AS SELECT * FROM interactions")
    con.execute("DELETE FROM interactions")
    resplit(con)
    state, changes = _run(con)
    assert len(state) == 0 and changes.fingerprints.num_rows == 0
    con.execute("INSERT INTO interactions SELECT * FROM saved")
    resplit(con)
    state, changes = _run(con)
    # compared with the empty store (text ids, not a type error): all 30 are new
    assert len(changes.changed) == 30 and changes.reason == "every learner's inputs changed"
    _same(state, _full(con))


def test_writing_connections_leave_merged_deletes_to_the_next_full_replace(tmp_path):
    from coursepilot.warehouse import VACUUM_TASKS, connect

    path = tmp_path / "warehouse.duckdb"
    with connect(path) as con:
        assert con.execute("SELECT current_setting('max_vacuum_tasks')").fetchone()[0] == VACUUM_TASKS == 0
        replace_tables(con, {"t": pd.DataFrame({"learner_id": [f"u{i:04d}" for i in range(5000)], "x": 1.0})})
        replace_tables(con, {}, {"t": Merge(pd.DataFrame({"learner_id": ["new"], "x": [2.0]}), ["u0001"])})
    with connect(path, read_only=True) as con:
        rows = con.execute("SELECT learner_id, x FROM t ORDER BY 1").fetchall()
    assert rows == [("new", 2.0), ("u0001", 1.0)]
