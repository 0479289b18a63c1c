"""Load a source into the warehouse: raw tables as read, then validated and cleaned tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import pandas as pd
import pyarrow as pa

from .cleaning import Policy, clean_tables
from .schema import TABLES, CleanReport
from .sources import SourceData
from .warehouse import content_hash, described, qident, replace_tables, row_count, table_exists

SOURCE_INFO = "source_info"
TRUTH_TABLES = ("truth_learners", "truth_courses")


def raw_name(table: str) -> str:
    return f"raw_{table}"


def write_raw(con: duckdb.DuckDBPyConnection, source: SourceData) -> dict:
    """Replace ``raw_*``, the ground-truth tables and ``source_info`` in one transaction.

    A raw table the source only grew (its stored rows are the first rows of the new one: the nightly's
    new interactions) gets only the new rows appended; ``source_info``'s ``appended_to`` gives those tables'
    earlier contents as [row count, :func:`~coursepilot.warehouse.content_hash`]. Ground-truth tables of an
    earlier source are dropped when this source has none.
    """
    info = {
        "format": source.format,
        "fingerprint": source.fingerprint(),
        "rating_scale": list(source.rating_scale) if source.rating_scale else None,
        "explicit_ratings": source.explicit_ratings,
        "files": [str(f) for f in source.files],
        "loaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "notes": source.notes,
    }
    frames: dict[str, object] = {raw_name(name): frame for name, frame in source.tables().items()}
    grown = {name: growth for name, frame in frames.items() if (growth := grown_from(con, name, frame))}
    info["appended_to"] = {name: [growth.rows, growth.digest] for name, growth in grown.items()}
    frames.update(source.truth)
    frames[SOURCE_INFO] = pd.DataFrame({"key": list(info), "value": [json.dumps(v) for v in info.values()]})
    replace_tables(
        con,
        {name: frame for name, frame in frames.items() if name not in grown},
        appended={name: growth.tail(frames[name]) for name, growth in grown.items()},
    )
    for stale in set(TRUTH_TABLES) - set(source.truth):
        con.execute(f"DROP TABLE IF EXISTS {stale}")
    return info


_UNITS = {"TIMESTAMP_S": "s", "TIMESTAMP_MS": "ms", "TIMESTAMP": "us", "TIMESTAMP_NS": "ns"}


@dataclass(frozen=True)
class Growth:
    """A stored table that is the head of the new one."""

    rows: int  # the stored rows
    digest: str  # their content_hash
    units: dict[str, str]  # timestamp columns whose unit the new table changed: the stored unit

    def tail(self, frame):
        """The rows of ``frame`` (pandas or arrow) after the stored ones, in the stored timestamp units."""
        if isinstance(frame, pd.DataFrame):
            return frame.iloc[self.rows :].astype({c: f"datetime64[{u}]" for c, u in self.units.items()})
        tail = frame.slice(self.rows)
        for column, unit in self.units.items():
            at = tail.schema.get_field_index(column)
            tail = tail.set_column(at, column, tail.column(at).cast(pa.timestamp(unit)))
        return tail


def grown_from(con: duckdb.DuckDBPyConnection, table: str, frame) -> Growth | None:
    """The :class:`Growth` of the stored ``table`` when its rows are, as a multiset, the first rows of
    ``frame`` and ``frame`` has more; None otherwise (about a second per 20M rows each side).

    The columns must be the same, with the same types but for a timestamp's unit (a file read and written
    again by pandas turns milliseconds into nanoseconds) where every value of ``frame`` keeps its value in the
    stored unit."""
    if not table_exists(con, table):
        return None
    n = row_count(con, table)
    if not n or len(frame) <= n:
        return None
    con.register("__incoming_head", frame)
    try:
        stored = described(con, f"SELECT * FROM {qident(table)}")
        incoming = described(con, "SELECT * FROM __incoming_head")
        if [c for c, _ in stored] != [c for c, _ in incoming]:
            return None
        select, units = [], {}
        for (column, kind), (_, new_kind) in zip(stored, incoming):
            c = qident(column)
            if kind == new_kind:
                select.append(c)
                continue
            if kind not in _UNITS or new_kind not in _UNITS:
                return None
            converted = (
                f"CAST(CAST({c} AS TIMESTAMP) AS {kind})"  # DuckDB converts units through microseconds
            )
            lost = con.execute(
                f"SELECT count(*) FROM __incoming_head WHERE epoch_ns({converted}) <> epoch_ns({c})"
            ).fetchone()[0]
            if lost:
                return None
            select.append(f"{converted} AS {c}")
            units[column] = _UNITS[kind]
        head = content_hash(con, f"SELECT {', '.join(select)} FROM __incoming_head LIMIT {int(n)}")
    finally:
        con.unregister("__incoming_head")
    kept = content_hash(con, f"SELECT * FROM {qident(table)}")
    return Growth(int(n), kept, units) if head == kept else None


def source_info(con: duckdb.DuckDBPyConnection) -> dict:
    """What ``write_raw`` recorded about the last source read."""
    if not table_exists(con, SOURCE_INFO):
        raise LookupError(
            "no source has been loaded into this warehouse yet (materialize the raw tables first)"
        )
    return {
        key: json.loads(value)
        for key, value in con.execute(f"SELECT key, value FROM {SOURCE_INFO}").fetchall()
    }


def clean(con: duckdb.DuckDBPyConnection, policy: Policy = Policy(), incremental: bool = True) -> CleanReport:
    """Validate the raw tables and replace ``learners``, ``courses`` and ``interactions`` atomically (only the
    rows an append touched, when the source only grew since the last clean)."""
    info = source_info(con)
    scale = info["rating_scale"]
    return clean_tables(
        con,
        {name: raw_name(name) for name in TABLES},
        tuple(scale) if scale else None,
        policy,
        info.get("appended_to"),
        incremental,
    )
