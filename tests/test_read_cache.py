"""The read cache: a kept read equals a fresh one, and any write to the tables it read is seen."""

import threading
import time

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from coursepilot import read_cache
from coursepilot import warehouse as warehouse_module
from coursepilot.read_cache import (
    VectorRows,
    cache_dir,
    cached_frame,
    cached_rows_with_vectors,
    replace_keeping_rows,
    tables_fingerprint,
)
from coursepilot.splits import coded_interactions
from coursepilot.warehouse import (
    WRITE_STAMPS,
    Merge,
    read_rows_with_vectors,
    replace_tables,
    row_count,
    stamp_tables,
    vector_column,
    vector_matrix,
    write_stamps,
)


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
        "CREATE TABLE split AS SELECT *, "
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
    warehouse.execute("UPDATE split SET rating = 6 - rating WHERE learner_id = 'u03'")  # it carries the rows
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


def test_writes_through_replace_tables_are_named_by_stamp_not_by_hashing(warehouse, monkeypatch):
    replace_tables(warehouse, {"split": "SELECT * FROM split"})
    (stamp,) = write_stamps(warehouse, ["split", "interactions"]).values()
    with monkeypatch.context() as patch:  # a stamped table is not hashed; an unstamped one is
        hashed = []
        patch.setattr(read_cache, "content_hash", lambda con, query: hashed.append(query) or "h")
        tables_fingerprint(warehouse, ("interactions", "split"))
        assert hashed == ['SELECT * FROM "interactions"']
    first = tables_fingerprint(warehouse, ("interactions", "split"))
    # every write makes a new stamp, a failed one keeps the old (the stamps are rolled back with the tables)
    with pytest.raises(duckdb.Error):
        replace_tables(warehouse, {"split": "SELECT * FROM split", "broken": "SELECT * FROM missing"})
    assert write_stamps(warehouse, ["split"]) == {"split": stamp}

    def stamp_then_fail(con, names):
        stamp_tables(con, names)
        raise duckdb.Error("failed after stamping")

    with monkeypatch.context() as patch, pytest.raises(duckdb.Error, match="after stamping"):
        patch.setattr(warehouse_module, "stamp_tables", stamp_then_fail)
        replace_tables(warehouse, {"split": "SELECT * FROM split"})
    assert write_stamps(warehouse, ["split"]) == {"split": stamp}
    assert tables_fingerprint(warehouse, ("interactions", "split")) == first
    replace_tables(warehouse, {}, appended={"split": warehouse.execute("SELECT * FROM split LIMIT 0").df()})
    assert write_stamps(warehouse, ["split"]) != {"split": stamp}
    assert tables_fingerprint(warehouse, ("interactions", "split")) != first
    # a hand edit that changes the row count is seen; deleting the stamp names the table by its contents again
    kept = coded_interactions(warehouse, ("train",), LEARNERS, COURSES)
    warehouse.execute("DELETE FROM split WHERE learner_id = 'u03'")
    assert len(coded_interactions(warehouse, ("train",), LEARNERS, COURSES)) < len(kept)
    warehouse.execute("UPDATE split SET split = 'test' WHERE learner_id = 'u04'")
    warehouse.execute(f"DELETE FROM {WRITE_STAMPS} WHERE table_name = 'split'")
    assert not (coded_interactions(warehouse, ("train",), LEARNERS, COURSES)["row"] == 4).any()


VECTORS = VectorRows("vectors", "learner_id", ("v",), ("tag",))


def _vector_rows(ids, seed=1):
    rng = np.random.default_rng(seed)
    return lambda part: pa.table(
        {
            "learner_id": [ids[i] for i in part],
            "tag": [None if i % 5 == 0 else f"t{i % 3}" for i in part],
            "v": vector_column(rng.normal(size=(len(part), 8))),
        }
    )


def _fresh_read_equals_the_kept(con, monkeypatch):
    """The kept read of VECTORS equals a fresh read, and is served without reading the table."""
    fresh = read_rows_with_vectors(con, "vectors", "learner_id", ("v",), ("tag",))
    with monkeypatch.context() as patched:
        patched.setattr(read_cache, "read_rows_with_vectors", lambda *a, **k: pytest.fail("read again"))
        frame, matrices = cached_rows_with_vectors(con, VECTORS)
    pd.testing.assert_frame_equal(frame, fresh[0])
    np.testing.assert_array_equal(matrices["v"], fresh[1]["v"])
    assert not matrices["v"].flags.writeable  # a view of the kept file
    return fresh


def test_cached_rows_with_vectors_equal_a_fresh_read_in_id_order(warehouse, monkeypatch):
    ids = [f"v{i:03d}" for i in range(40)]
    rows = _vector_rows(ids)
    replace_tables(warehouse, {"vectors": rows(range(30))})
    replace_tables(warehouse, {}, merged={"vectors": Merge(rows([3, *range(30, 40)]), ids[4:30])})
    cached_rows_with_vectors(warehouse, VECTORS)  # the first read keeps it
    fresh = _fresh_read_equals_the_kept(warehouse, monkeypatch)
    assert fresh[0]["learner_id"].tolist() == ids[3:]  # merged rows come back in id order


def test_a_writer_keeps_the_read_of_what_it_wrote_whole_and_merged(warehouse, monkeypatch):
    ids = [f"v{i:03d}" for i in range(40)]
    rows = _vector_rows(ids)
    replace_keeping_rows(
        warehouse, VECTORS, {"vectors": rows([*range(20, 30), *range(10)])}
    )  # not in id order
    assert (
        _fresh_read_equals_the_kept(warehouse, monkeypatch)[0]["learner_id"].tolist() == ids[:10] + ids[20:30]
    )
    # a merge into the kept read: learners 5-9 leave, 3 and 30-34 are (re)written
    merge = Merge(rows([3, *range(30, 35)]), [*ids[:3], *ids[4:5], *ids[20:30]])
    replace_keeping_rows(warehouse, VECTORS, {}, merged={"vectors": merge})
    fresh = _fresh_read_equals_the_kept(warehouse, monkeypatch)
    assert fresh[0]["learner_id"].tolist() == [*ids[:5], *ids[20:35]]
    assert len(list(cache_dir(warehouse).glob("vectors-*"))) == 1  # the read before the merge is gone


def test_a_merge_without_a_kept_read_leaves_the_read_to_the_reader_and_bad_writes_are_refused(warehouse):
    ids = [f"v{i:03d}" for i in range(10)]
    rows = _vector_rows(ids)
    replace_tables(warehouse, {"vectors": rows(range(6))})
    replace_keeping_rows(warehouse, VECTORS, {}, merged={"vectors": Merge(rows([6, 7]), ids[:6])})
    assert not list(cache_dir(warehouse).glob("vectors-*"))
    assert cached_rows_with_vectors(warehouse, VECTORS)[0]["learner_id"].tolist() == ids[:8]
    with pytest.raises(ValueError, match="vectors: only a merge by learner_id"):
        replace_keeping_rows(warehouse, VECTORS, {}, merged={"vectors": Merge(rows([8]), ids, "tag = 't1'")})
    with pytest.raises(TypeError, match="vectors: the rows to keep are written as a pyarrow Table"):
        replace_keeping_rows(warehouse, VECTORS, {"vectors": rows([8]).to_pandas()})
    assert row_count(warehouse, "vectors") == 8  # nothing was written


def test_kept_rows_take_the_table_types_and_are_dropped_where_the_merge_differs(warehouse, monkeypatch):
    ids = [f"v{i:03d}" for i in range(10)]
    untagged = lambda part: _vector_rows(ids)(part).set_column(1, "tag", pa.nulls(len(part)))  # noqa: E731
    replace_keeping_rows(warehouse, VECTORS, {"vectors": untagged(range(6))})  # stored as INTEGER
    fresh = _fresh_read_equals_the_kept(warehouse, monkeypatch)
    assert fresh[0]["tag"].dtype == np.float64
    replace_keeping_rows(warehouse, VECTORS, {}, merged={"vectors": Merge(untagged([1, 7]), ids[2:6])})
    _fresh_read_equals_the_kept(warehouse, monkeypatch)
    # SQL's NOT IN keeps every row when a kept id is NULL: the kept read would differ, so none is kept
    replace_keeping_rows(warehouse, VECTORS, {}, merged={"vectors": Merge(untagged([8]), [ids[2], None])})
    reads = []
    monkeypatch.setattr(
        read_cache,
        "read_rows_with_vectors",
        lambda *a, **k: reads.append(a) or read_rows_with_vectors(*a, **k),
    )
    assert cached_rows_with_vectors(warehouse, VECTORS)[0]["learner_id"].tolist() == [*ids[1:6], *ids[7:9]]
    assert len(reads) == 1


def test_an_unreadable_kept_read_is_deleted_and_read_again(warehouse):
    ids = [f"v{i:03d}" for i in range(10)]
    rows = _vector_rows(ids)
    replace_keeping_rows(warehouse, VECTORS, {"vectors": rows(range(6))})
    (kept,) = cache_dir(warehouse).glob("vectors-*")
    kept.write_bytes(b"not arrow")
    replace_keeping_rows(warehouse, VECTORS, {}, merged={"vectors": Merge(rows([6]), ids[:6])})
    assert not list(cache_dir(warehouse).glob("vectors-*"))
    assert cached_rows_with_vectors(warehouse, VECTORS)[0]["learner_id"].tolist() == ids[:7]


def test_vector_matrix_keeps_a_row_per_vector_in_a_sliced_column_and_an_empty_write_stamps_nothing(warehouse):
    matrix = np.arange(12, dtype=np.float32).reshape(6, 2)
    column = vector_column(matrix)
    np.testing.assert_array_equal(vector_matrix(column.slice(2, 3)), matrix[2:5])
    with_null = pa.FixedSizeListArray.from_arrays(
        pa.array(matrix.ravel()), 2, mask=pa.array([False, True] * 3)
    )
    assert vector_matrix(with_null).shape == (6, 2)
    replace_tables(warehouse, {})
    assert write_stamps(warehouse, ["split"]) == {}


def test_steps_on_threads_wanting_one_read_make_it_once(warehouse):
    reads, results = [], []

    def read():
        reads.append(1)
        time.sleep(0.5)  # long enough for the other thread to ask meanwhile
        return pd.DataFrame({"x": np.arange(5)})

    def step():
        results.append(cached_frame(warehouse.cursor(), ("interactions",), "k", read)["x"].tolist())

    steps = [threading.Thread(target=step) for _ in range(2)]
    for thread in steps:
        thread.start()
    for thread in steps:
        thread.join()
    assert len(reads) == 1 and results == [list(range(5))] * 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_merged_read_is_the_kept_rows_and_the_fresh_ones_in_id_order(seed):
    """Kept learners (even ids), some of them rewritten, and new learners between them (odd ids)."""
    rng = np.random.default_rng(seed)
    old_ids = np.array([f"v{i:04d}" for i in range(0, 800, 2)], dtype=object)
    old = rng.random((len(old_ids), 3), dtype=np.float32)
    rewritten = rng.choice(old_ids, 50, replace=False)
    new_ids = np.array([f"v{i:04d}" for i in rng.choice(range(1, 800, 2), 60, replace=False)], dtype=object)
    fresh_ids = rng.permutation(np.r_[rewritten, new_ids])
    fresh = rng.random((len(fresh_ids), 3), dtype=np.float32)
    kept_ids = np.setdiff1d(rng.choice(old_ids, 300, replace=False), rewritten)
    frame, matrices = read_cache._merged_rows(
        VECTORS,
        (pd.DataFrame({"learner_id": old_ids, "tag": "old"}), {"v": old}),
        (pd.DataFrame({"learner_id": fresh_ids, "tag": "new"}), {"v": fresh}),
        Merge(None, kept_ids),
    )
    expected = dict(zip(old_ids, old))
    expected = {i: expected[i] for i in kept_ids} | dict(zip(fresh_ids, fresh))
    assert frame["learner_id"].tolist() == sorted(expected)
    np.testing.assert_array_equal(matrices["v"], np.array([expected[i] for i in sorted(expected)]))
    assert (frame["tag"] == "new").sum() == len(fresh_ids)
