"""Load a source into the warehouse: raw tables as read, then validated and cleaned tables."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import duckdb
import pandas as pd

from .cleaning import Policy, clean_tables
from .schema import TABLES, CleanReport
from .sources import SourceData
from .warehouse import replace_tables, table_exists

SOURCE_INFO = "source_info"
TRUTH_TABLES = ("truth_learners", "truth_courses")


def raw_name(table: str) -> str:
    return f"raw_{table}"


def write_raw(con: duckdb.DuckDBPyConnection, source: SourceData) -> dict:
    """Replace ``raw_*``, the ground-truth tables and ``source_info`` in one transaction.

    Ground-truth tables of an earlier source are dropped when this source has none.
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
    frames.update(source.truth)
    frames[SOURCE_INFO] = pd.DataFrame({"key": list(info), "value": [json.dumps(v) for v in info.values()]})
    replace_tables(con, frames)
    for stale in set(TRUTH_TABLES) - set(source.truth):
        con.execute(f"DROP TABLE IF EXISTS {stale}")
    return info


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


def clean(con: duckdb.DuckDBPyConnection, policy: Policy = Policy()) -> CleanReport:
    """Validate the raw tables and replace ``learners``, ``courses`` and ``interactions`` atomically."""
    scale = source_info(con)["rating_scale"]
    return clean_tables(
        con, {name: raw_name(name) for name in TABLES}, tuple(scale) if scale else None, policy
    )
