"""The shared split: disjoint, time-ordered, seeded, with cold-start learners and courses."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from coursepilot.ingest import clean, write_raw
from coursepilot.models.base import split_frame
from coursepilot.models.hybrid import carve_validation, latest_on_platform, latest_per_learner
from coursepilot.sources import load_source
from coursepilot.splits import (
    MERGED_SHARE,
    SplitConfig,
    _sample,
    _split_sql,
    _tiebreak,
    build_split,
    coded_interactions,
    update_split,
)
from coursepilot.warehouse import columns, write_stamps


@pytest.fixture
def warehouse(con, xs_folder):
    write_raw(con, load_source("synthetic", xs_folder))
    clean(con)
    return con


def test_every_interaction_in_exactly_one_split(warehouse):
    counts = build_split(warehouse, SplitConfig(seed=1))
    assert sum(counts.values()) == 12_000 and set(counts) == {"train", "test", "cold_learner", "cold_course"}
    dup = warehouse.execute(
        "SELECT count(*) FROM (SELECT learner_id, course_id FROM split GROUP BY 1, 2 HAVING count(*) > 1)"
    ).fetchone()
    assert dup == (0,)


def test_test_interactions_are_each_learners_latest(warehouse):
    build_split(warehouse, SplitConfig(test_share=0.25))
    late = warehouse.execute("""
        SELECT count(*) FROM split t JOIN interactions it USING (learner_id, course_id)
        WHERE t.split = 'test' AND EXISTS (
            SELECT 1 FROM split r JOIN interactions ir USING (learner_id, course_id)
            WHERE r.split = 'train' AND r.learner_id = t.learner_id AND ir.ts > it.ts)""").fetchone()[0]
    assert late == 0
    share = warehouse.execute(
        "SELECT avg(CASE WHEN split = 'test' THEN 1.0 ELSE 0 END) FROM split WHERE split IN ('train', 'test')"
    ).fetchone()[0]
    assert 0.2 < share < 0.3


def test_cold_learners_and_courses_never_reach_training(warehouse):
    build_split(warehouse, SplitConfig(cold_learner_share=0.05, cold_course_share=0.05))
    leak = warehouse.execute("""
        SELECT count(*) FROM split s WHERE s.split = 'train' AND (
          s.learner_id IN (SELECT learner_id FROM split WHERE split = 'cold_learner') OR
          s.course_id IN (SELECT course_id FROM split WHERE split = 'cold_course'))""").fetchone()[0]
    assert leak == 0
    cold = warehouse.execute(
        "SELECT count(DISTINCT learner_id) FROM split WHERE split = 'cold_learner'"
    ).fetchone()[0]
    assert 10 < cold < 80  # about 5% of 800


def test_same_seed_same_split_other_seed_other_split(warehouse):
    def snapshot(seed):
        build_split(warehouse, SplitConfig(seed=seed))
        return warehouse.execute("SELECT * FROM split ORDER BY ALL").fetchall()

    assert snapshot(3) == snapshot(3) != snapshot(4)


def _split_by_hand(con, config: SplitConfig) -> set[tuple[str, str, str]]:
    """The module docstring's rule in pandas, from DuckDB's seeded coin flips and tie-breaks only."""
    seed = config.seed
    rows = con.execute(
        f"SELECT learner_id, course_id, ts, {_sample('learner_id', config.cold_learner_share, seed)} AS cl, "
        f"{_sample('course_id', config.cold_course_share, seed + 1)} AS cc, "
        f"{_tiebreak(seed)} AS tiebreak FROM interactions"
    ).df()
    out = set()
    for learner, group in rows.groupby("learner_id"):
        warm = group[~group["cl"] & ~group["cc"]].sort_values(["ts", "tiebreak"])
        n = len(warm)
        # half away from zero, as SQL rounds (Python's round goes to even)
        held = min(n - 1, max(1, math.floor(n * config.test_share + 0.5)))
        held = held if n >= config.min_interactions else 0
        out |= {(learner, c, "cold_learner") for c in group.loc[group["cl"], "course_id"]}
        out |= {(learner, c, "cold_course") for c in group.loc[~group["cl"] & group["cc"], "course_id"]}
        out |= {(learner, c, "test" if k >= n - held else "train") for k, c in enumerate(warm["course_id"])}
    return out


@pytest.mark.parametrize("seed", [0, 7])
def test_the_split_is_the_documented_rule(warehouse, seed):
    config = SplitConfig(test_share=0.3, cold_learner_share=0.1, cold_course_share=0.1, seed=seed)
    build_split(warehouse, config)
    split = set(warehouse.execute("SELECT learner_id, course_id, split FROM split").fetchall())
    assert split == _split_by_hand(warehouse, config)


def test_columns_a_source_keeps_never_clash_with_the_split_and_an_old_split_is_refused(warehouse):
    labelled = "SELECT learner_id, course_id, split FROM split ORDER BY ALL"
    build_split(warehouse, SplitConfig(seed=2))
    labels = warehouse.execute(labelled).fetchall()
    for name in ("split", "k", "n", "tiebreak", "cold_learner"):
        warehouse.execute(f"ALTER TABLE interactions ADD COLUMN {name} VARCHAR DEFAULT 'kept'")
    build_split(warehouse, SplitConfig(seed=2))
    assert warehouse.execute(labelled).fetchall() == labels
    assert warehouse.execute("SELECT DISTINCT k, n, tiebreak, cold_learner FROM split").fetchall() == [
        ("kept",) * 4
    ]
    warehouse.execute("CREATE OR REPLACE TABLE split AS SELECT learner_id, course_id, split FROM split")
    with pytest.raises(ValueError, match="written by an earlier version; materialize split again"):
        split_frame(warehouse, ("train",))
    _, changes = update_split(warehouse, SplitConfig(seed=2))  # what the message asks, fingerprints or not
    assert changes.reason == "the stored split lacks columns of the interactions"
    assert warehouse.execute(labelled).fetchall() == labels and len(split_frame(warehouse, ("train",)))


def test_the_split_carries_every_interaction_with_its_columns(warehouse):
    build_split(warehouse, SplitConfig(seed=1))
    assert [c for c in columns(warehouse, "split") if c != "split"] == columns(warehouse, "interactions")
    carried = "SELECT * EXCLUDE (split) FROM split"
    for rows in (f"{carried} EXCEPT ALL FROM interactions", f"FROM interactions EXCEPT ALL {carried}"):
        assert warehouse.execute(f"SELECT count(*) FROM ({rows})").fetchone()[0] == 0


def _differs_from_a_whole_split(con, config: SplitConfig) -> int:
    """Rows in which ``split`` and a whole split of today's interactions differ, both ways."""
    con.execute("CREATE OR REPLACE TEMP TABLE whole AS " + _split_sql(con, config))
    both = "(FROM split EXCEPT ALL FROM whole) UNION ALL (FROM whole EXCEPT ALL FROM split)"
    return con.execute(f"SELECT count(*) FROM ({both})").fetchone()[0]


def test_an_incremental_split_splits_again_only_the_learners_whose_interactions_changed(warehouse):
    config = SplitConfig(seed=3)
    _, changes = update_split(warehouse, config)
    assert changes.everyone and changes.reason == "no earlier run"
    first = warehouse.execute("SELECT DISTINCT learner_id FROM interactions ORDER BY 1 LIMIT 3").fetchall()
    grown, edited, gone = (r[0] for r in first)
    rowids = "SELECT learner_id, course_id, rowid FROM split WHERE learner_id NOT IN (?, ?, ?)"
    kept_before = set(warehouse.execute(rowids, [grown, edited, gone]).fetchall())
    warehouse.execute(
        "INSERT INTO interactions SELECT * REPLACE (c.course_id AS course_id, ts + INTERVAL 400 DAY AS ts) "
        "FROM (FROM interactions WHERE learner_id = ? LIMIT 1), "
        "(SELECT min(course_id) AS course_id FROM courses WHERE course_id NOT IN "
        " (SELECT course_id FROM interactions WHERE learner_id = ?)) c",
        [grown, grown],
    )
    warehouse.execute(
        "UPDATE interactions SET ts = ts + INTERVAL 900 DAY WHERE learner_id = ? "
        "AND course_id = (SELECT min(course_id) FROM interactions WHERE learner_id = ?)",
        [edited, edited],
    )
    warehouse.execute("DELETE FROM interactions WHERE learner_id = ?", [gone])

    counts, changes = update_split(warehouse, config)
    assert sorted(changes.changed) == sorted([grown, edited]) and changes.removed == 1
    assert changes.metadata()["recomputed_learners"] == 2 and not changes.everyone
    assert sum(counts.values()) == warehouse.execute("SELECT count(*) FROM interactions").fetchone()[0]
    assert _differs_from_a_whole_split(warehouse, config) == 0
    # the other learners' rows were not written again
    assert set(warehouse.execute(rowids, [grown, edited, gone]).fetchall()) == kept_before

    stamp = write_stamps(warehouse, ["split"])
    _, changes = update_split(warehouse, config)
    assert len(changes.changed) == 0 and changes.kept == changes.fingerprints.num_rows
    assert write_stamps(warehouse, ["split"]) == stamp  # nothing changed: not written, cached reads stand
    _, changes = update_split(warehouse, SplitConfig(seed=4))  # other settings: every learner
    assert changes.everyone and _differs_from_a_whole_split(warehouse, SplitConfig(seed=4)) == 0
    renamed = columns(warehouse, "interactions")[-1]
    warehouse.execute(f"ALTER TABLE interactions RENAME COLUMN {renamed} TO renamed_{renamed}")
    _, changes = update_split(warehouse, SplitConfig(seed=4))  # the same values under another name
    assert changes.everyone and f"renamed_{renamed}" in columns(warehouse, "split")


def test_a_split_where_most_learners_changed_is_written_whole(warehouse):
    update_split(warehouse)
    learners = warehouse.execute("SELECT count(DISTINCT learner_id) FROM interactions").fetchone()[0]
    warehouse.execute(
        "UPDATE interactions SET ts = ts + INTERVAL 1 DAY WHERE learner_id IN "
        f"(SELECT DISTINCT learner_id FROM interactions ORDER BY 1 LIMIT {int(learners * MERGED_SHARE) + 1})"
    )
    _, changes = update_split(warehouse)
    assert changes.everyone and "written whole" in changes.reason
    assert len(changes.changed) == learners and _differs_from_a_whole_split(warehouse, SplitConfig()) == 0
    _, changes = update_split(warehouse, incremental=False)
    assert changes.reason == "incremental updates are off"


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="test_share"):
        SplitConfig(test_share=1.5)


def _ids(con, table: str, column: str) -> np.ndarray:
    return np.array(
        [r[0] for r in con.execute(f"SELECT {column} FROM {table} ORDER BY 1").fetchall()], dtype=object
    )


def test_coded_interactions_are_the_split_with_positions(warehouse):
    build_split(warehouse, SplitConfig())
    learners, courses = (
        _ids(warehouse, "learners", "learner_id")[::2],
        _ids(warehouse, "courses", "course_id"),
    )
    coded = coded_interactions(warehouse, ("train", "test"), learners, courses)
    frame = split_frame(warehouse, ("train", "test"))
    expected = frame[frame["learner_id"].isin(learners)]
    kept = split_frame(warehouse, ("train", "test"), learners)  # the same rows, read for those learners only
    pd.testing.assert_frame_equal(
        kept.sort_values(["learner_id", "course_id"]).reset_index(drop=True),
        expected.sort_values(["learner_id", "course_id"]).reset_index(drop=True),
    )
    assert len(coded) == len(expected) > 0 and "learner_id" not in coded
    got = pd.DataFrame(
        {"learner_id": learners[coded["row"]], "course_id": courses[coded["col"]], "rating": coded["rating"]}
    )
    merged = got.merge(expected, on=["learner_id", "course_id"], suffixes=("", "_expected"))
    assert len(merged) == len(expected)
    np.testing.assert_array_equal(merged["rating"], merged["rating_expected"])
    assert coded[["row", "col"]].apply(tuple, axis=1).is_monotonic_increasing


def test_validation_carve_holds_each_learners_latest_share(warehouse):
    build_split(warehouse, SplitConfig())
    train = coded_interactions(
        warehouse,
        ("train",),
        _ids(warehouse, "learners", "learner_id"),
        _ids(warehouse, "courses", "course_id"),
    )
    held = latest_per_learner(train, 0.25, min_interactions=3, seed=1)
    np.testing.assert_array_equal(held, latest_per_learner(train, 0.25, min_interactions=3, seed=1))
    for _, group in train.assign(held=held).groupby("row"):
        if len(group) < 3:
            assert not group["held"].any()
            continue
        assert group["held"].sum() == max(1, round(len(group) * 0.25))
        assert group.loc[group["held"], "ts"].min() >= group.loc[~group["held"], "ts"].max()


def _coded(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    """(learner row, course col, day) triples as coded interactions."""
    frame = pd.DataFrame(rows, columns=["row", "col", "day"])
    return frame.assign(ts=pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["day"], unit="D"))


def test_platform_carve_holds_the_latest_period_and_leaves_every_learner_a_history():
    # learners 0-3 take a course a day in turn; learner 4 starts late and has all of their rows in the last
    # period
    train = _coded([(d % 4, d, d) for d in range(16)] + [(4, 20, 17), (4, 21, 18), (4, 22, 19), (4, 23, 20)])
    held = latest_on_platform(train, share=0.25, seed=0)
    assert held.sum() == 5 - 1  # the latest 5 of 20 rows, but learner 4 keeps their earliest
    assert sorted(train.loc[held, "day"]) == [15, 18, 19, 20]  # learner 4 keeps day 17
    assert set(train.loc[~held, "row"]) == set(train["row"])


def test_the_carve_is_the_rule_holding_more_learners():
    # cohorts: most learners take two courses, one a term; only learner 0 takes enough for a per-learner carve
    cohort = [(r, c, 30 * c + r % 5) for r in range(1, 40) for c in (r % 3, 3 + r % 2)]
    train = _coded([(0, c, 10 * c) for c in range(6)] + cohort)
    carve = carve_validation(train, 0.2, min_interactions=3, seed=0)
    assert carve.learners["per_learner"] == 1 and carve.rule == "platform" and carve.learners["platform"] > 1
    assert (
        np.array_equal(carve.held, latest_on_platform(train, 0.2, seed=0)) and "platform" in carve.describe()
    )
    # learners with long histories: each learner's latest rows hold everyone
    steady = _coded([(r, c, c) for r in range(10) for c in range(10)])
    carve = carve_validation(steady, 0.2, min_interactions=3, seed=0)
    assert carve.rule == "per_learner" and carve.learners["per_learner"] == 10
    assert np.array_equal(carve.held, latest_per_learner(steady, 0.2, 3, seed=0))
    no_time = steady.drop(columns="ts")  # without timestamps only the per-learner rule exists
    assert carve_validation(no_time, 0.2, 3, seed=0).learners.keys() == {"per_learner"}
