"""The read cache: a kept read equals a fresh one, and any write to the tables it read is seen."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from coursepilot.read_cache import cache_dir, cached_frame
from coursepilot.splits import coded_interactions


@pytest.fixture
def warehouse(tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame(
        {
            "learner_id": [f"u{i % 12:02d}" for i in range(n)],
            "course_id": [f"c{i % 7}" for i in range(n)],
            "rating": rng.integers(1, 6, n).astype(float),
            "completed": pd.array([True, False, None] * (n // 3), dtype="boolean"),
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D"),
        }
    ).drop_duplicates(["learner_id", "course_id"])
    con.register("frame", frame)
    con.execute("CREATE TABLE interactions AS SELECT * FROM frame")
    con.execute(
        "CREATE TABLE split AS SELECT learner_id, course_id, "
        "CASE WHEN hash(learner_id || course_id) % 4 = 0 THEN 'test' ELSE 'train' END AS split "
        "FROM interactions"
    )
    yield con
    con.close()


LEARNERS = np.asarray([f"u{i:02d}" for i in range(12)], dtype=object)
COURSES = np.asarray([f"c{i}" for i in range(7)], dtype=object)


def entries(con):
    return sorted(p.name for p in cache_dir(con).glob("*.arrow"))


def test_a_kept_read_equals_a_fresh_one_dtypes_included(warehouse):
    fresh = coded_interactions(warehouse, ("train",), LEARNERS, COURSES)
    assert len(entries(warehouse)) == 1
    kept = coded_interactions(warehouse, ("train",), LEARNERS, COURSES)
    pd.testing.assert_frame_equal(kept, fresh)
    assert str(kept["completed"].dtype) == "boolean" and kept["completed"].isna().any()
    # another split or another id order is another entry, with its own rows
    reordered = coded_interactions(warehouse, ("train",), LEARNERS[::-1], COURSES)
    assert len(entries(warehouse)) == 2
    assert sorted(zip(11 - reordered["row"], reordered["col"])) == sorted(zip(fresh["row"], fresh["col"]))


def test_a_subset_of_learners_is_cut_from_the_entry_of_everyone(warehouse, tmp_path):
    warehouse.execute("CREATE TABLE learners AS SELECT DISTINCT learner_id FROM interactions")
    memory = duckdb.connect()
    for table in ("interactions", "split"):
        memory.register(table, warehouse.execute(f"SELECT * FROM {table}").to_arrow_table())
    for chosen in (["u02", "u05", "u11"], ["u11", "u00", "u07"], ["u04", "ghost"]):
        subset = coded_interactions(warehouse, ("train",), chosen, COURSES)
        pd.testing.assert_frame_equal(subset, coded_interactions(memory, ("train",), chosen, COURSES))
        assert set(subset["row"]) == set(range(len(chosen))) - ({1} if "ghost" in chosen else set())
    # the first two lists share the entry of every learner; the list with an unknown id has its own
    assert len(entries(warehouse)) == 2


def test_any_write_to_a_read_table_is_seen_and_stale_entries_go(warehouse):
    before = coded_interactions(warehouse, ("train",), LEARNERS, COURSES)
    first = entries(warehouse)
    warehouse.execute("UPDATE interactions SET rating = 6 - rating WHERE learner_id = 'u03'")
    after = coded_interactions(warehouse, ("train",), LEARNERS, COURSES)
    changed = after["row"] == 3
    assert changed.any()
    np.testing.assert_array_equal(after.loc[changed, "rating"], 6 - before.loc[changed, "rating"])
    assert entries(warehouse) != first and len(entries(warehouse)) == 1
    warehouse.execute("UPDATE split SET split = 'test' WHERE learner_id = 'u03'")
    assert not (coded_interactions(warehouse, ("train",), LEARNERS, COURSES)["row"] == 3).any()


def test_a_hit_does_not_read_and_a_damaged_entry_is_read_again(warehouse):
    reads = []

    def read():
        reads.append(1)
        return pd.DataFrame({"x": np.arange(5)})

    cached_frame(warehouse, ("interactions",), "k", read)
    cached_frame(warehouse, ("interactions",), "k", read)
    assert len(reads) == 1
    (path,) = cache_dir(warehouse).glob("*.arrow")
    path.write_bytes(b"not arrow")
    again = cached_frame(warehouse, ("interactions",), "k", read)
    assert len(reads) == 2 and again["x"].tolist() == list(range(5))
    assert cached_frame(warehouse, ("interactions",), "k", read)["x"].tolist() == list(range(5))
    assert len(reads) == 2


def test_an_in_memory_database_reads_uncached():
    con = duckdb.connect()
    assert cache_dir(con) is None
    reads = []
    for _ in range(2):
        cached_frame(con, (), "k", lambda: reads.append(1) or pd.DataFrame({"x": [1]}))
    assert len(reads) == 2
