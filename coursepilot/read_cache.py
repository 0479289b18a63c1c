"""Heavy warehouse reads kept on disk while the tables they read stay the same.

At a million learners, coding the 20M training rows to matrix positions costs 10-30 s, and one nightly
run read them in six stages. A read is kept in ``<warehouse>.cache/``, as an Arrow file (a frame) or a
numpy archive (arrays derived from a read), named by a fingerprint of the tables it read and of the rest of
the query. A table's part of the fingerprint is its write stamp and row count when it has a stamp
(:data:`~coursepilot.warehouse.WRITE_STAMPS`: every write of :func:`~coursepilot.warehouse.replace_tables`
makes one), else the sum of its row hashes (about a second at 20M rows; any write changes it, whoever makes
it). Writing an entry deletes the entries of the same tables with other contents. In-memory
databases are not cached.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
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
    content_hash,
    qident,
    read_rows_with_vectors,
    row_count,
    vector_column,
    vector_matrix,
    write_stamps,
)

ROWS_VERSION = 1  # bump when read_rows_with_vectors reads differently: kept rows are then read again


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


def cached_rows_with_vectors(
    con: duckdb.DuckDBPyConnection,
    table: str,
    id_column: str,
    vector_columns: tuple[str, ...],
    other_columns: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """:func:`~coursepilot.warehouse.read_rows_with_vectors`, kept as an Arrow file: a hit maps the file
    and the matrices are read-only views of it (the file cache holds them once for every reader)."""

    def read() -> pa.Table:
        frame, matrices = read_rows_with_vectors(con, table, id_column, vector_columns, other_columns)
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        for column, matrix in matrices.items():
            arrow = arrow.append_column(column, vector_column(matrix))
        return arrow

    key = f"rows with vectors v{ROWS_VERSION} {id_column} {other_columns} {vector_columns}"
    arrow = _cached(con, (table,), key, read, _Format(".arrow", _read_table, _write_table))
    frame = arrow.select([id_column, *other_columns]).to_pandas()
    return frame, {column: vector_matrix(arrow.column(column)) for column in vector_columns}


class _Format(NamedTuple):
    suffix: str
    read: Callable[[Path], object]
    write: Callable[[str, object], None]


def _cached(con, tables: tuple[str, ...], key: str, compute: Callable, form: _Format):
    folder = cache_dir(con)
    if folder is None:
        return compute()
    read_from = "+".join(tables)
    contents = f"{read_from}-{tables_fingerprint(con, tables)}-"
    path = folder / f"{contents}{hashlib.sha1(key.encode()).hexdigest()[:16]}{form.suffix}"
    if path.exists():
        try:
            return form.read(path)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, pa.ArrowInvalid):
            path.unlink(missing_ok=True)  # unreadable: read again and replace it
    value = compute()
    try:
        _write(path, value, form.write)
    except (OSError, ValueError, pa.ArrowException):  # a read-only home, or a value the format cannot hold
        return value
    for stale in folder.glob(f"{read_from}-*"):
        if not stale.name.startswith(contents):
            stale.unlink(missing_ok=True)
    return value


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
