"""Heavy warehouse reads kept on disk while the tables they read stay the same.

At a million learners, coding the 20M training rows to matrix positions costs 10-30 s, and one nightly
run read them in six stages. A read is kept as an Arrow file in ``<warehouse>.cache/``, named by a
fingerprint of the tables it read (row count and the sum of row hashes: about a second at 20M rows,
and any write changes it, whoever makes it) and of the rest of the query. Writing an entry deletes the
entries of the same tables with other contents. In-memory databases are not cached.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc

from .warehouse import content_hash, qident

SUFFIX = ".arrow"


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
    """A digest of the contents of ``tables`` (:func:`~coursepilot.warehouse.content_hash` of each)."""
    parts = [f"{name}:{content_hash(con, f'SELECT * FROM {qident(name)}')}" for name in tables]
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
    folder = cache_dir(con)
    if folder is None:
        return read()
    read_from = "+".join(tables)
    contents = f"{read_from}-{tables_fingerprint(con, tables)}-"
    path = folder / f"{contents}{hashlib.sha1(key.encode()).hexdigest()[:16]}{SUFFIX}"
    if path.exists():
        try:
            return ipc.open_file(pa.memory_map(str(path))).read_all().to_pandas()
        except (OSError, pa.ArrowInvalid):
            path.unlink(missing_ok=True)  # unreadable: read again and replace it
    frame = read()
    try:
        _write(path, frame)
    except (OSError, pa.ArrowException):  # a read-only home, or a column Arrow cannot hold: read uncached
        return frame
    for stale in folder.glob(f"{read_from}-*{SUFFIX}"):
        if not stale.name.startswith(contents):
            stale.unlink(missing_ok=True)
    return frame


def _write(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` to ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    try:
        with ipc.new_file(temporary, table.schema) as writer:
            writer.write_table(table)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
