"""Data-quality checks on the cleaned tables (run as Dagster asset checks after every load)."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from .schema import TABLES, Column, Kind
from .warehouse import columns, qident, row_count

NULL_RATE_WARN = 0.5  # an optional text column more than half empty is worth a look


@dataclass
class CheckResult:
    name: str
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def _count(con, sql: str, params: list | None = None) -> int:
    return int(con.execute(sql, params or []).fetchone()[0])


def unique_key(con: duckdb.DuckDBPyConnection, table: str) -> CheckResult:
    spec = TABLES[table]
    keys = ", ".join(qident(k) for k in spec.key)
    dup = _count(con, f"SELECT count(*) - count(DISTINCT ({keys})) FROM {qident(table)}")
    nulls = _count(
        con,
        f"SELECT count(*) FROM {qident(table)} WHERE "
        + " OR ".join(f"{qident(k)} IS NULL" for k in spec.key),
    )
    return CheckResult(
        f"{table}_unique_key",
        dup == 0 and nulls == 0,
        f"({', '.join(spec.key)}) is unique and never null",
        {"duplicate_keys": dup, "null_keys": nulls},
    )


def referential_integrity(con: duckdb.DuckDBPyConnection) -> CheckResult:
    found = {}
    for key, parent in (("learner_id", "learners"), ("course_id", "courses")):
        found[f"unknown_{key}"] = _count(
            con,
            f"SELECT count(*) FROM interactions i WHERE NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{key} "
            f"= i.{key})",
        )
    return CheckResult(
        "interactions_referential_integrity",
        not any(found.values()),
        "every interaction names a known learner and a known course",
        found,
    )


def _bounds(column: Column, rating_scale) -> tuple[float | None, float | None]:
    if column.name == "rating":
        return tuple(rating_scale) if rating_scale else (None, None)
    return column.min, column.max


def value_ranges(con: duckdb.DuckDBPyConnection, table: str, rating_scale=None) -> CheckResult:
    present = set(columns(con, table))
    violations = {}
    for column in TABLES[table].columns:
        if column.name not in present:
            continue
        c = qident(column.name)
        if column.kind is Kind.FLOAT:
            low, high = _bounds(column, rating_scale)
            conds = [
                f"{c} < {float(low)!r}" if low is not None else None,
                f"{c} > {float(high)!r}" if high is not None else None,
            ]
            conds = [x for x in conds if x]
            if conds:
                violations[column.name] = _count(
                    con, f"SELECT count(*) FROM {qident(table)} WHERE " + " OR ".join(conds)
                )
        elif column.allowed:
            violations[column.name] = _count(
                con,
                f"SELECT count(*) FROM {qident(table)} WHERE {c} IS NOT NULL AND NOT list_contains(?, {c})",
                [list(column.allowed)],
            )
        elif column.kind is Kind.TIMESTAMP:
            violations[column.name] = _count(
                con, f"SELECT count(*) FROM {qident(table)} WHERE {c} > now()::TIMESTAMP + INTERVAL 1 DAY"
            )
    return CheckResult(
        f"{table}_value_ranges",
        not any(violations.values()),
        "numbers within their ranges, labels within their vocabularies, no future timestamps",
        {f"out_of_range_{k}": v for k, v in violations.items()},
    )


def null_rates(con: duckdb.DuckDBPyConnection, table: str) -> CheckResult:
    """Required columns are never null; optional text columns more than half empty are reported."""
    n = row_count(con, table)
    present = set(columns(con, table))
    rates, required_nulls = {}, 0
    for column in TABLES[table].columns:
        if column.name not in present:
            continue
        nulls = _count(con, f"SELECT count(*) FROM {qident(table)} WHERE {qident(column.name)} IS NULL")
        rates[column.name] = round(nulls / n, 4) if n else 0.0
        if column.required:
            required_nulls += nulls
    sparse = sorted(c for c, r in rates.items() if r > NULL_RATE_WARN)
    return CheckResult(
        f"{table}_null_rates",
        required_nulls == 0,
        f"required columns are never null; optional columns over {NULL_RATE_WARN:.0%} null: "
        f"{', '.join(sparse) or 'none'}",
        {**{f"null_rate_{c}": r for c, r in rates.items()}, "required_nulls": required_nulls},
    )
