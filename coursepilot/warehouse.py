"""Small DuckDB helpers: quoting, atomic table replacement, table profiles."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa


def qident(name: str) -> str:
    """Quote an SQL identifier (column or table name) for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


VACUUM_TASKS = 0
"""DuckDB's checkpoint compacts the row groups merges delete rows from; at a million learners that rewrote
most of ``learner_profiles`` (1.5 GB) on closing the nightly's connection: 14-21 s, against 0.3 s without.
Deleted rows stay as tombstones until the table is next replaced whole: every merged or upserted table is, in
the weekly full run (``incremental: false``)."""


@contextmanager
def connect(path: str | Path, read_only: bool = False, lock_wait_s: float = 30.0):
    """A DuckDB connection to the warehouse file, closed on exit, even when the body raises.

    DuckDB lets one process write a file; while another holds it, this waits up to ``lock_wait_s``.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_wait_s
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            con.execute("SET enable_progress_bar = false")  # our own progress display owns the terminal
            if not read_only:
                con.execute(f"SET max_vacuum_tasks = {VACUUM_TASKS}")
            break
        except duckdb.IOException as err:
            if "lock" not in str(err).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        yield con
    finally:
        con.close()


def learner_id_table(ids) -> pa.Table:
    """``ids`` as a one-column ``learner_id`` text table, to register and join against (typed even when
    empty)."""
    return pa.table({"learner_id": pa.array(list(ids), pa.string())})


@dataclass(frozen=True)
class Merge:
    """New rows for an existing per-learner table: the stored rows of learners outside ``kept``, and those
    matching ``drop`` (an SQL condition), are deleted and ``rows`` inserted; kept rows are not rewritten. An
    SQL ``rows`` runs after the delete, in the same transaction: it must not read the table it merges into."""

    rows: object  # a pandas DataFrame, a pyarrow Table or an SQL SELECT text
    kept: object  # learner ids
    drop: str = ""


@dataclass(frozen=True)
class Upsert:
    """New rows for an existing table: stored rows with the key of a new row are deleted, the new ones
    inserted."""

    rows: object  # a pandas DataFrame, a pyarrow Table or an SQL SELECT text
    key: tuple[str, ...]


WRITE_STAMPS = "_write_stamps"
"""A fresh random stamp per table at every write made through :func:`replace_tables`, in the write's own
transaction: the read cache names a read of stamped tables by their stamps instead of hashing their contents
(14.4 s over five stages of a nightly at a million learners). A table written by hand keeps its stamp:
delete its row here, and its reads are named by content hash again."""


def stamp_tables(con: duckdb.DuckDBPyConnection, names: Iterable[str]) -> None:
    """Give each of ``names`` a fresh write stamp (inside the caller's transaction)."""
    names = list(names)
    if not names:
        return
    con.execute(f"CREATE TABLE IF NOT EXISTS {WRITE_STAMPS} (table_name VARCHAR, stamp VARCHAR)")
    con.execute(f"DELETE FROM {WRITE_STAMPS} WHERE list_contains(?, table_name)", [names])
    con.executemany(f"INSERT INTO {WRITE_STAMPS} VALUES (?, ?)", [(n, uuid.uuid4().hex) for n in names])


def write_stamps(con: duckdb.DuckDBPyConnection, names: Iterable[str]) -> dict[str, str]:
    """{table: its write stamp} of those of ``names`` that have one."""
    if not table_exists(con, WRITE_STAMPS):
        return {}
    return dict(
        con.execute(
            f"SELECT table_name, stamp FROM {WRITE_STAMPS} WHERE list_contains(?, table_name)", [list(names)]
        ).fetchall()
    )


def replace_tables(
    con: duckdb.DuckDBPyConnection,
    frames: Mapping[str, object],
    merged: Mapping[str, Merge] | None = None,
    appended: Mapping[str, object] | None = None,
    upserted: Mapping[str, Upsert] | None = None,
) -> None:
    """Replace several tables in one transaction: all are written, or none is, with their write stamps.

    ``frames`` maps table names to a pandas DataFrame, a pyarrow Table, or an SQL ``SELECT`` text;
    ``merged`` maps existing per-learner tables to the :class:`Merge` of their new rows; ``appended`` maps
    existing tables to rows inserted after theirs; ``upserted`` to the :class:`Upsert` of their new rows.
    """
    merged, appended, upserted = merged or {}, appended or {}, upserted or {}
    sources = {
        **{f"__appended_{i}": rows for i, rows in enumerate(appended.values())},
        **{
            f"__upserted_{i}": upsert.rows
            for i, upsert in enumerate(upserted.values())
            if not isinstance(upsert.rows, str)
        },
        **{
            f"__incoming_{i}": source
            for i, source in enumerate(frames.values())
            if not isinstance(source, str)
        },
        **{
            f"__merged_{i}": merge.rows
            for i, merge in enumerate(merged.values())
            if not isinstance(merge.rows, str)
        },
        **{f"__kept_{i}": learner_id_table(merge.kept) for i, merge in enumerate(merged.values())},
    }
    statements = [
        f"CREATE OR REPLACE TABLE {qident(name)} AS "
        + (source if isinstance(source, str) else f"SELECT * FROM __incoming_{i}")
        for i, (name, source) in enumerate(frames.items())
    ]
    statements += [
        f"INSERT INTO {qident(name)} BY NAME SELECT * FROM __appended_{i}" for i, name in enumerate(appended)
    ]
    for i, (name, upsert) in enumerate(upserted.items()):
        rows = _rows(upsert.rows, f"__upserted_{i}")
        match = " AND ".join(f"{qident(name)}.{qident(k)} = u.{qident(k)}" for k in upsert.key)
        statements += [
            f"DELETE FROM {qident(name)} USING {rows} u WHERE {match}",
            f"INSERT INTO {qident(name)} BY NAME SELECT * FROM {rows}",
        ]
    for i, (name, merge) in enumerate(merged.items()):
        drop = f" OR ({merge.drop})" if merge.drop else ""
        rows = _rows(merge.rows, f"__merged_{i}")
        statements += [
            f"DELETE FROM {qident(name)} WHERE learner_id NOT IN (SELECT learner_id FROM __kept_{i}){drop}",
            f"INSERT INTO {qident(name)} BY NAME SELECT * FROM {rows}",
        ]
    for view, source in sources.items():
        con.register(view, source)
    con.execute("BEGIN TRANSACTION")
    try:
        for statement in statements:
            con.execute(statement)
        stamp_tables(con, {*frames, *appended, *upserted, *merged})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for view in sources:
            try:
                con.unregister(view)
            except duckdb.Error:
                pass


def _rows(rows, view: str) -> str:
    """Where a statement reads ``rows`` from: the SQL SELECT itself, or the view a frame is registered as."""
    return f"({rows})" if isinstance(rows, str) else view


def described(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple[str, str]]:
    """(column name, DuckDB type) of ``query``'s result."""
    return [(name, kind) for name, kind, *_ in con.execute(f"DESCRIBE {query}").fetchall()]


def content_hash(con: duckdb.DuckDBPyConnection, query: str) -> str:
    """A digest of ``query``'s rows in any order (the sum of the row hashes) and of its column names and
    types (a row's hash does not see its column names)."""
    schema = described(con, query)
    total = con.execute(f"SELECT coalesce(sum(hash(__row)::HUGEINT), 0) FROM ({query}) __row").fetchone()[0]
    return f"{total}:{hashlib.sha1(repr(schema).encode()).hexdigest()[:12]}"


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(found and found[0])


def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


def row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {qident(table)}").fetchone()[0])


def null_rates(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, float]:
    """Share of NULLs per column (0 for an empty table)."""
    cols = [c for c in columns(con, table) if not c.startswith("_")]
    if not cols:
        return {}
    exprs = ", ".join(f"avg(CASE WHEN {qident(c)} IS NULL THEN 1.0 ELSE 0.0 END)" for c in cols)
    values = con.execute(f"SELECT {exprs} FROM {qident(table)}").fetchone()
    return {c: float(v or 0.0) for c, v in zip(cols, values)}


def preview(con: duckdb.DuckDBPyConnection, table: str, n: int = 5, width: int = 40) -> pd.DataFrame:
    """The first ``n`` rows with long text shortened, for asset metadata and summaries."""
    frame = con.execute(f"SELECT * FROM {qident(table)} LIMIT {int(n)}").df()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(
                lambda v: v if not isinstance(v, str) or len(v) <= width else v[: width - 1] + "…"
            )
    return frame


def vector_column(matrix: np.ndarray) -> pa.FixedSizeListArray:
    """A float32 matrix as an arrow fixed-size-list column (stored by DuckDB as FLOAT[d])."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), matrix.shape[1])


def vector_matrix(column: pa.ChunkedArray | pa.FixedSizeListArray) -> np.ndarray:
    """A FLOAT[d] column read through arrow as an (n, d) float32 matrix (a view of one chunk's buffer)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    width = column.type.list_size
    return (
        column.values.slice(column.offset * width, len(column) * width)  # a slot per row, null or not
        .to_numpy(zero_copy_only=False)
        .reshape(-1, width)
        .astype(np.float32, copy=False)
    )


def read_vectors(
    con: duckdb.DuckDBPyConnection, table: str, id_column: str, vector_column_name: str, where: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 matrix) of a table with a FLOAT[d] column, in id order."""
    arrow = con.execute(
        f"SELECT {qident(id_column)}, {qident(vector_column_name)} FROM {qident(table)} {where} "
        f"ORDER BY {qident(id_column)}"
    ).to_arrow_table()
    return np.asarray(arrow.column(0).to_pylist(), dtype=object), vector_matrix(arrow.column(1))


def read_rows_with_vectors(
    con: duckdb.DuckDBPyConnection,
    table: str,
    id_column: str,
    vector_columns: tuple[str, ...],
    other_columns: tuple[str, ...] = (),
    batch_rows: int = 65_536,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """(id and ``other_columns`` as a frame, {vector column: float32 matrix}) of a whole table, in id order.

    Read in batches into preallocated matrices, so that at a million rows of FLOAT[384] columns the
    matrices are the only full-size copy (a sorted arrow read holds three).
    """
    n = con.execute(f"SELECT count(*) FROM {qident(table)}").fetchone()[0]
    names = [id_column, *other_columns]
    reader = con.sql(
        f"SELECT {', '.join(qident(c) for c in [*names, *vector_columns])} FROM {qident(table)}"
    ).to_arrow_reader(batch_rows)
    matrices = {
        c: np.empty((n, reader.schema.field(c).type.list_size), dtype=np.float32) for c in vector_columns
    }
    frames, start = [], 0
    for batch in reader:
        for column in vector_columns:
            matrices[column][start : start + batch.num_rows] = vector_matrix(batch.column(column))
        frames.append(batch.select(names).to_pandas())
        start += batch.num_rows
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=names)
    # a scan returns insertion order: id order, unless rows were merged in (replace_tables' ``merged``)
    return in_id_order(frame, matrices, id_column)


def in_id_order(
    frame: pd.DataFrame, matrices: dict[str, np.ndarray], id_column: str
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``frame`` and the ``matrices`` of its rows, sorted by :func:`id_order` (as they are when in order)."""
    order = id_order(frame[id_column])
    if order is None:
        return frame, matrices
    return frame.iloc[order].reset_index(drop=True), {c: m[order] for c, m in matrices.items()}


def id_order(ids) -> np.ndarray | None:
    """The stable sort of ``ids`` into id order, or None when they are in it: the row order of
    :func:`read_rows_with_vectors`."""
    order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
    return None if (order == np.arange(len(order))).all() else order
