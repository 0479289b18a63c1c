"""Heavy warehouse reads kept on disk while the tables they read stay the same.

At a million learners, coding the 20M training rows to matrix positions costs 10-30 s, and one nightly
run read them in six stages. A read is kept in ``<warehouse>.cache/``, as an Arrow file (a frame) or a
numpy archive (arrays derived from a read), named by a fingerprint of the tables it read and of the rest of
the query. A table's part of the fingerprint is its write stamp and row count when it has a stamp
(:data:`~coursepilot.warehouse.WRITE_STAMPS`: every write of :func:`~coursepilot.warehouse.replace_tables`
makes one), else the sum of its row hashes (about a second at 20M rows; any write changes it, whoever makes
it). Writing an entry deletes the entries of the same tables with other contents. In-memory
databases are not cached. A writer of a table read whole with its vectors can keep that read itself
(:func:`replace_keeping_rows`): the learner profiles' writer does, so the peer stages map the 1.5 GB of
profile vectors at a million learners instead of reading them from the warehouse.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc

from .warehouse import (
    Merge,
    content_hash,
    id_order,
    in_id_order,
    qident,
    read_rows_with_vectors,
    replace_tables,
    row_count,
    vector_column,
    vector_matrix,
    write_stamps,
)

ROWS_VERSION = 1  # bump when read_rows_with_vectors or replace_keeping_rows change what a kept read holds


def cache_dir(con: duckdb.DuckDBPyConnection) -> Path | None:
    """``<warehouse file>.cache`` of ``con``'s database, or None for an in-memory one."""
    found = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    if not found or not found[0]:
        return None
    database = Path(found[0])
    return database.with_name(database.name + ".cache")


def tables_fingerprint(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> str:
    """A digest of the contents of ``tables``: each one's write stamp and row count, or its
    :func:`~coursepilot.warehouse.content_hash` when it has no stamp."""
    stamps = write_stamps(con, tables)
    parts = [
        f"{name}:stamp {stamps[name]}:{row_count(con, name)}"
        if name in stamps
        else f"{name}:{content_hash(con, f'SELECT * FROM {qident(name)}')}"
        for name in tables
    ]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def ids_digest(ids) -> str:
    """A digest of an id list, order included."""
    return hashlib.sha1("\n".join(map(str, ids)).encode()).hexdigest()[:16]


def cached_frame(
    con: duckdb.DuckDBPyConnection, tables: tuple[str, ...], key: str, read: Callable[[], pd.DataFrame]
) -> pd.DataFrame:
    """``read()``, or the frame it returned for the same ``key`` while ``tables`` held what they hold now.

    The frame comes back with the same dtypes either way (pandas' own through Arrow's metadata).
    """
    return _cached(con, tables, key, read, _Format(".arrow", _read_frame, _write_frame))


def cached_arrays(
    con: duckdb.DuckDBPyConnection,
    tables: tuple[str, ...],
    key: str,
    compute: Callable[[], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """``compute()`` (named numpy arrays, no objects), or what it returned for the same ``key`` while
    ``tables`` held what they hold now."""
    return _cached(con, tables, key, compute, _Format(".npz", _read_arrays, _write_arrays))


class VectorRows(NamedTuple):
    """A whole table read as its id and ``other`` columns and its FLOAT[d] ``vectors`` columns, in id order
    (:func:`~coursepilot.warehouse.read_rows_with_vectors`)."""

    table: str
    id_column: str
    vectors: tuple[str, ...]
    other: tuple[str, ...] = ()

    def key(self) -> str:
        return f"rows with vectors v{ROWS_VERSION} {self.id_column} {self.other} {self.vectors}"


def cached_rows_with_vectors(
    con: duckdb.DuckDBPyConnection, rows: VectorRows
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The read of ``rows``, kept as an Arrow file: a hit maps the file and the matrices are read-only views
    of it (the file cache holds them once for every reader)."""

    def read() -> pa.Table:
        return _rows_table(
            rows, *read_rows_with_vectors(con, rows.table, rows.id_column, rows.vectors, rows.other)
        )

    return _split_rows(rows, _cached(con, (rows.table,), rows.key(), read, _ROWS))


def replace_keeping_rows(
    con: duckdb.DuckDBPyConnection,
    rows: VectorRows,
    frames: dict[str, object],
    merged: dict[str, Merge] | None = None,
) -> None:
    """:func:`~coursepilot.warehouse.replace_tables`, with the kept read of ``rows`` made from what was
    written (``rows.table``'s pyarrow Table in ``frames``, or its :class:`~coursepilot.warehouse.Merge` into
    the read kept before the write), so that its next reader maps the file instead of reading the table.
    Without a kept read to merge into, the next reader reads the table."""
    merged = merged or {}
    merge = merged.get(rows.table)
    written = merge.rows if merge is not None else frames.get(rows.table)
    if not isinstance(written, pa.Table):
        raise TypeError(f"{rows.table}: the rows to keep are written as a pyarrow Table")
    if merge is not None and (merge.drop or rows.id_column != "learner_id"):
        raise ValueError(f"{rows.table}: only a merge by learner_id without a drop condition can be kept")
    before = _entry(con, (rows.table,), rows.key(), _ROWS) if merge is not None else None
    previous = _read_or_none(before, _ROWS)
    replace_tables(con, frames, merged)
    after = _entry(con, (rows.table,), rows.key(), _ROWS)
    if after is None or (merge is not None and previous is None):
        return
    try:
        # typed as the table returns them (a column of Nones only is stored as INTEGER, say)
        schema = (
            con.execute(
                f"SELECT {', '.join(qident(c) for c in (rows.id_column, *rows.other))} "
                f"FROM {qident(rows.table)} LIMIT 0"
            )
            .to_arrow_table()
            .schema
        )
        fresh = _frame_and_matrices(rows, written, schema)
        frame, matrices = (
            fresh if merge is None else _merged_rows(rows, _split_rows(rows, previous), fresh, merge)
        )
        if len(frame) == row_count(con, rows.table):  # a merge SQL read otherwise (a NULL among the kept ids)
            _keep(after, _rows_table(rows, frame, matrices), _ROWS)
    except Exception:  # noqa: BLE001 - keeping is a shortcut: the write stands, and the next reader reads it
        return


def _frame_and_matrices(
    rows: VectorRows, table: pa.Table, schema: pa.Schema
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Written rows as a read returns them: the frame (typed by ``schema``) and matrices, in id order."""
    frame = table.select([rows.id_column, *rows.other]).cast(schema).to_pandas()
    matrices = {column: vector_matrix(table.column(column)) for column in rows.vectors}
    return in_id_order(frame, matrices, rows.id_column)


def _merged_rows(
    rows: VectorRows,
    previous: tuple[pd.DataFrame, dict[str, np.ndarray]],
    fresh: tuple[pd.DataFrame, dict[str, np.ndarray]],
    merge: Merge,
    chunk: int = 65_536,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The kept read after ``merge``: the ``previous`` rows of kept learners, then the ``fresh`` rows, in id
    order (each matrix gathered once into its place, ``chunk`` rows at a time)."""
    (old_frame, old_matrices), (new_frame, new_matrices) = previous, fresh
    kept = np.flatnonzero(pd.Index(old_frame[rows.id_column].to_numpy(dtype=object)).isin(merge.kept))
    frame = pd.concat([old_frame.iloc[kept], new_frame], ignore_index=True)
    order = id_order(frame[rows.id_column])
    order = np.arange(len(frame)) if order is None else order
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(order))
    matrices = {}
    for column in rows.vectors:
        merged = np.empty((len(frame), old_matrices[column].shape[1]), dtype=np.float32)
        for start in range(0, len(kept), chunk):
            part = slice(start, min(start + chunk, len(kept)))
            merged[place[part]] = old_matrices[column][kept[part]]
        merged[place[len(kept) :]] = new_matrices[column]
        matrices[column] = merged
    return frame.iloc[order].reset_index(drop=True), matrices


def _rows_table(rows: VectorRows, frame: pd.DataFrame, matrices: dict[str, np.ndarray]) -> pa.Table:
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    for column in rows.vectors:
        arrow = arrow.append_column(column, vector_column(matrices[column]))
    return arrow


def _split_rows(rows: VectorRows, arrow: pa.Table) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    frame = arrow.select([rows.id_column, *rows.other]).to_pandas()
    return frame, {column: vector_matrix(arrow.column(column)) for column in rows.vectors}


class _Format(NamedTuple):
    suffix: str
    read: Callable[[Path], object]
    write: Callable[[str, object], None]


def _entry(con, tables: tuple[str, ...], key: str, form: _Format) -> Path | None:
    """Where the read ``key`` of ``tables`` as they are now is kept (None: an in-memory database)."""
    folder = cache_dir(con)
    if folder is None:
        return None
    contents = f"{'+'.join(tables)}-{tables_fingerprint(con, tables)}-"
    return folder / f"{contents}{hashlib.sha1(key.encode()).hexdigest()[:16]}{form.suffix}"


def _read_or_none(path: Path | None, form: _Format):
    """The value kept at ``path``, or None when there is none (an unreadable one is deleted)."""
    if path is None or not path.exists():
        return None
    try:
        return form.read(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pa.ArrowInvalid):
        path.unlink(missing_ok=True)
        return None


_MAKING: dict[Path, threading.Lock] = {}
_MAKING_LOCK = threading.Lock()


def _making(path: Path) -> threading.Lock:
    """The lock of the entry at ``path``: steps on threads (``pipelines.threads``) that want the same read
    make it once, the later ones wait and read it."""
    with _MAKING_LOCK:
        return _MAKING.setdefault(path, threading.Lock())


def _cached(con, tables: tuple[str, ...], key: str, compute: Callable, form: _Format):
    path = _entry(con, tables, key, form)
    if path is None:
        return compute()
    with _making(path):
        value = _read_or_none(path, form)
        if value is None:
            value = compute()
            _keep(path, value, form)
    return value


def _keep(path: Path, value, form: _Format) -> None:
    """Keep ``value`` at ``path`` and delete the entries of the same tables with other contents (a read-only
    home, or a value the format cannot hold, keeps nothing)."""
    try:
        _write(path, value, form.write)
    except (OSError, ValueError, pa.ArrowException):
        return
    contents = path.name.rsplit("-", 1)[0] + "-"
    read_from = contents.rsplit("-", 2)[0]
    for stale in path.parent.glob(f"{read_from}-*"):
        if not stale.name.startswith(contents):
            stale.unlink(missing_ok=True)


def _write(path: Path, value, write: Callable[[str, object], None]) -> None:
    """Write ``value`` to ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    try:
        write(temporary, value)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _read_table(path: Path) -> pa.Table:
    return ipc.open_file(pa.memory_map(str(path))).read_all()


def _write_table(temporary: str, table: pa.Table) -> None:
    with ipc.new_file(temporary, table.schema) as writer:
        writer.write_table(table)


_ROWS = _Format(".arrow", _read_table, _write_table)


def _read_frame(path: Path) -> pd.DataFrame:
    return _read_table(path).to_pandas()


def _write_frame(temporary: str, frame: pd.DataFrame) -> None:
    _write_table(temporary, pa.Table.from_pandas(frame, preserve_index=False))


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def _write_arrays(temporary: str, arrays: dict[str, np.ndarray]) -> None:
    with open(temporary, "wb") as handle:  # a file object: numpy would add .npz to the name
        np.savez(handle, **arrays)
