"""The recommenders' shared inputs: relevant sets read from a matrix on lookup, and the prepared training
data, test sets and carve kept in the read cache equal a fresh derivation."""

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from coursepilot.evaluation.protocol import held_out
from coursepilot.models import prepared
from coursepilot.models.base import interaction_times, read_train
from coursepilot.models.hybrid import validation_data
from coursepilot.ranking import Relevant, relevant_sets
from coursepilot.read_cache import cache_dir
from coursepilot.sampling import restrict, sample_learners
from coursepilot.warehouse import replace_tables
from tests.recommender_data import SCALE


def _by_hand(matrix: sparse.csr_matrix) -> dict[int, set[int]]:
    dense = matrix.toarray()
    return {r: set(np.flatnonzero(dense[r]).tolist()) for r in range(dense.shape[0]) if dense[r].any()}


def test_relevant_sets_read_from_the_matrix_equal_the_sets_by_hand():
    rng = np.random.default_rng(3)
    matrix = sparse.random(40, 9, density=0.15, format="csr", random_state=4, dtype=np.float32)
    expected = _by_hand(matrix)
    relevant = relevant_sets(matrix)
    assert relevant == expected and dict(relevant) == expected and len(relevant) == len(expected)
    assert list(relevant) == sorted(expected)
    empty = next(r for r in range(40) if r not in expected)
    for missing in (empty, -1, 40):
        assert missing not in relevant
        with pytest.raises(KeyError):
            relevant[missing]
    rows, cols = relevant.pairs()
    pairs = sorted((r, c) for r, cs in expected.items() for c in cs)
    assert sorted(zip(rows.tolist(), cols.tolist())) == pairs
    assert Relevant.from_pairs(rows, cols, matrix.shape) == expected
    chosen = rng.choice(40, 15, replace=False)
    assert restrict(relevant, chosen) == restrict(expected, chosen)
    assert sample_learners(relevant, 5, seed=2) == sample_learners(expected, 5, seed=2)


def _assert_same(got: prepared.Prepared, data, relevant, validation) -> None:
    assert (got.data.matrix != data.matrix).nnz == 0 and (got.data.times != data.times).nnz == 0
    np.testing.assert_array_equal(got.data.learner_ids, data.learner_ids)
    np.testing.assert_array_equal(got.data.p_adaptive, data.p_adaptive)
    np.testing.assert_array_equal(got.data.course_vectors, data.course_vectors)
    assert got.relevant == relevant
    fit_data, valid, carve = validation
    assert (got.validation.fit_data.matrix != fit_data.matrix).nnz == 0
    assert (got.validation.fit_data.times != fit_data.times).nnz == 0
    assert got.validation.valid == valid
    np.testing.assert_array_equal(got.validation.carve.held, carve.held)
    assert got.validation.carve.describe() == carve.describe()


def _fresh(con, share=0.2, seed=0):
    data, train = read_train(con, SCALE)
    return data, held_out(con, data, "test", SCALE), validation_data(con, data, SCALE, share, seed, train)


@pytest.fixture
def on_disk(warehouse, tmp_path):
    """A file copy of the shared in-memory warehouse (only a file database has a read cache)."""
    path = tmp_path / "warehouse.duckdb"
    warehouse.execute(f"ATTACH '{path}' AS copy")
    try:
        warehouse.execute("COPY FROM DATABASE memory TO copy")
    finally:
        warehouse.execute("DETACH copy")
    con = duckdb.connect(str(path))
    yield con
    con.close()


def test_prepared_inputs_equal_a_fresh_derivation_in_memory(warehouse):
    _assert_same(prepared.prepare(warehouse, SCALE, 0.2, 0), *_fresh(warehouse))


def test_a_kept_preparation_is_not_derived_again_and_sees_writes(on_disk, monkeypatch):
    first = prepared.prepare(on_disk, SCALE, 0.2, 0)
    entries = sorted(p.name for p in cache_dir(on_disk).glob("*.npz"))
    assert len(entries) == 1
    with monkeypatch.context() as patch:  # a hit reads no training row
        patch.setattr(prepared, "coded_interactions", lambda *a, **k: pytest.fail("derived again"))
        # labels are read fresh on a hit
        on_disk.execute("UPDATE learner_labels SET p_adaptive = 1 - p_adaptive")
        kept = prepared.prepare(on_disk, SCALE, 0.2, 0)
    _assert_same(kept, *_fresh(on_disk))
    np.testing.assert_allclose(kept.data.p_adaptive, 1 - first.data.p_adaptive)
    # other carve settings are another entry
    _assert_same(prepared.prepare(on_disk, SCALE, 0.3, 1), *_fresh(on_disk, 0.3, 1))
    assert len(list(cache_dir(on_disk).glob("*.npz"))) == 2
    # a write to the split is seen, and the entries of the old contents go
    learner = on_disk.execute("SELECT learner_id FROM split WHERE split = 'test' LIMIT 1").fetchone()[0]
    replace_tables(
        on_disk,
        {
            "split": "SELECT * REPLACE "
            f"(CASE WHEN learner_id = '{learner}' THEN 'train' ELSE split END AS split) FROM split"
        },
    )
    after = prepared.prepare(on_disk, SCALE, 0.2, 0)
    _assert_same(after, *_fresh(on_disk))
    assert after.data.matrix.nnz > first.data.matrix.nnz
    assert sorted(p.name for p in cache_dir(on_disk).glob("*.npz")) != entries
    assert len(list(cache_dir(on_disk).glob("*.npz"))) == 1
    # a damaged entry is derived again
    (entry,) = cache_dir(on_disk).glob("*.npz")
    entry.write_bytes(b"not an archive")
    _assert_same(prepared.prepare(on_disk, SCALE, 0.2, 0), *_fresh(on_disk))


def test_interaction_times_are_seconds_since_the_epoch_with_the_earliest_where_missing():
    coded = pd.DataFrame(
        {
            "row": [0, 0, 1, 2],
            "col": [1, 2, 0, 2],
            "ts": pd.to_datetime(
                ["2025-03-01 12:00:00.5", None, "1999-12-31 00:00:00.0", "2025-03-02 00:00:00.0"]
            ).as_unit("us"),
        }
    )
    times = interaction_times(coded, (3, 3)).toarray()
    earliest = 946598400.0  # 1999-12-31
    assert times[0, 1] == 1740830400.5 and times[1, 0] == earliest and times[2, 2] == 1740873600.0
    assert times[0, 2] == earliest  # no time: the earliest one
    assert interaction_times(coded.assign(ts=pd.NaT), (3, 3)) is None
    assert interaction_times(coded.drop(columns="ts"), (3, 3)) is None
