"""Validate raw tables against the canonical contract and build the cleaned tables, in DuckDB SQL.

Errors (a :class:`~coursepilot.schema.ValidationError` naming file, column, row and rule):
missing required column, empty table, value of the wrong type, value out of range, unknown
difficulty label, a timestamp in the future or before 1970, an id that is empty or absurdly long.

Documented repairs (applied unless ``strict``; counted in :class:`~coursepilot.schema.CleanReport`):
- duplicate learner or course ids: the first row (in file order) is kept;
- duplicate (learner, course) interactions: the most recent row is kept (the last one in file
  order when there is no timestamp);
- text longer than ``MAX_TEXT_CHARS``: truncated;
- orphan interactions (unknown learner or course): dropped, but only while they are at most
  ``max_orphan_share`` of the interactions; more than that is an error (it usually means the ids
  of two files do not match).
With ``Policy.rankable`` (the pipeline's load) valid data the pipeline could rank nothing from is refused too
(:func:`check_rankable`): fewer than two courses, fewer than two learners with interactions, or no learner
with enough courses for the test split and the validation carve. Nothing is written until every table has
passed, and then all three are replaced in one transaction, so a failed load leaves the previous good tables
untouched. When the source only grew, only the raw rows the appended ones touch are cleaned again and
upserted, in one transaction too (:func:`clean_tables`).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from .schema import (
    INTERACTIONS,
    MAX_TEXT_CHARS,
    TABLES,
    CleanReport,
    Column,
    Kind,
    Repair,
    TableSpec,
    ValidationError,
)
from .splits import SplitConfig
from .warehouse import Upsert, columns, content_hash, qident, replace_tables, row_count, table_exists

MAX_ID_CHARS = 200
EARLIEST_TS = "1970-01-01"
MIN_TEST_COURSES = SplitConfig.min_interactions


@dataclass(frozen=True)
class Policy:
    strict: bool = False
    max_orphan_share: float = 0.05
    rankable: bool = (
        False  # also refuse valid data with nothing to rank (check_rankable): the pipeline's load
    )


# bump when the checks or repairs change: the next load cleans every row again
CLEANING_VERSION = 1
CLEANED_FROM = "cleaned_from"
"""What the cleaned tables were built from: each raw table's row count and content hash, and the checks'
context (rating scale, policy)."""


def clean_tables(
    con: duckdb.DuckDBPyConnection,
    raw: dict[str, str],
    rating_scale: tuple[float, float] | None,
    policy: Policy = Policy(),
    appended: dict[str, list] | None = None,
    incremental: bool = True,
) -> CleanReport:
    """Validate the raw tables named in ``raw`` ({canonical name: raw table}) and replace the
    cleaned ``learners``, ``courses`` and ``interactions`` tables atomically.

    ``appended``: {raw table: [row count, content hash] before rows were appended} (``source_info``'s
    ``appended_to``). When the cleaned tables were built from exactly those rows, only the raw rows that the
    appended ones touch are cleaned again and upserted (:func:`_clean_growth`); the tables equal a full clean.
    ``incremental=False`` (the weekly full run) cleans every row.
    """
    context = f"cleaning v{CLEANING_VERSION} scale {rating_scale} policy {policy}"
    grown = _clean_growth(con, raw, appended or {}, context, rating_scale, policy) if incremental else None
    if grown is not None:
        return grown
    report = CleanReport()
    staged: dict[str, str] = {}
    for name, spec in TABLES.items():
        staged[name] = _stage_table(con, spec, raw[name], rating_scale, policy, report)
    _drop_orphans(con, staged, policy, report)
    if policy.rankable:
        check_rankable(con, staged)
    _drop_provenance(con, staged)
    replace_tables(
        con,
        {
            **{name: f"SELECT * FROM {qident(tmp)}" for name, tmp in staged.items()},
            CLEANED_FROM: _built_from(con, raw, context),
        },
    )
    for name in TABLES:
        report.rows_out[name] = row_count(con, name)
        con.execute(f"DROP TABLE IF EXISTS {qident(staged[name])}")
    return report


def _raw_state(con, table: str) -> tuple[int, str]:
    """(row count, content hash) of a raw table, as ``cleaned_from`` records it."""
    return row_count(con, table), content_hash(con, f"SELECT * FROM {qident(table)}")


def _built_from(con, raw: dict[str, str], context: str) -> pd.DataFrame:
    tables = list(raw.values())
    states = [_raw_state(con, t) for t in tables]
    return pd.DataFrame(
        {
            "raw_table": tables,
            "raw_rows": [rows for rows, _ in states],
            "raw_hash": [digest for _, digest in states],
            "context": context,
        }
    )


def _clean_growth(
    con, raw: dict[str, str], appended: dict[str, list], context: str, rating_scale, policy: Policy
) -> CleanReport | None:
    """Clean again only the raw rows that rows appended since the last clean touch: rows with an appended
    row's key (dedup picks among them), and interactions of an appended learner or course (an orphan before).
    Their cleaned rows replace the stored ones of the same keys, in one transaction.

    None, for a full clean, when the cleaned tables were not built from the raw tables' earlier rows with the
    same checks, or when a touched interaction is an orphan (the share of orphans is a property of all rows).
    Growth cannot make valid data unrankable, so ``check_rankable`` is not run again.
    """
    if not set(appended) & set(raw.values()) or not all(
        table_exists(con, t) for t in (*TABLES, CLEANED_FROM)
    ):
        return None
    built = {
        t: (rows, digest, ctx)
        for t, rows, digest, ctx in con.execute(
            f"SELECT raw_table, raw_rows, raw_hash, context FROM {CLEANED_FROM}"
        ).fetchall()
    }
    earlier = {}
    for table in raw.values():
        rows, digest = appended.get(table) or _raw_state(con, table)
        if built.get(table) != (rows, digest, context):
            return None
        earlier[table] = rows
    report = CleanReport(grown=True)
    touched, staged = {}, {}
    try:
        touched = _touched(con, raw, earlier)
        for name, spec in TABLES.items():
            staged[name] = _stage_table(con, spec, touched[name], rating_scale, policy, report, whole=False)
        for key, parent in (("learner_id", "learners"), ("course_id", "courses")):
            orphan = con.execute(
                f"SELECT count(*) FROM {qident(staged['interactions'])} i WHERE i.{key} NOT IN "
                f"(SELECT {key} FROM {parent} UNION ALL SELECT {key} FROM {qident(staged[parent])})"
            ).fetchone()[0]
            if orphan:
                return None
        _drop_provenance(con, staged)
        replace_tables(
            con,
            {CLEANED_FROM: _built_from(con, raw, context)},
            upserted={
                name: Upsert(f"SELECT * FROM {qident(tmp)}", TABLES[name].key) for name, tmp in staged.items()
            },
        )
        for name, tmp in staged.items():
            report.rows_out[name] = row_count(con, tmp)
        return report
    finally:
        for tmp in (*staged.values(), *touched.values()):
            con.execute(f"DROP TABLE IF EXISTS {qident(tmp)}")


def _touched(con, raw: dict[str, str], earlier: dict[str, int]) -> dict[str, str]:
    """Temp tables of the raw rows (all columns, provenance included) that the rows appended after the first
    ``earlier[raw table]`` touch, per canonical table."""
    keys = {}
    for name, spec in TABLES.items():
        ids = ", ".join(f"{_id_expr(k)} AS {qident(k)}" for k in spec.key)
        keys[name] = f"SELECT DISTINCT {ids} FROM {qident(raw[name])} WHERE rowid >= {earlier[raw[name]]}"
    touched = {}
    for name, spec in TABLES.items():
        table = qident(raw[name])
        match = " AND ".join(f"{_id_expr(k, 'r')} = n.{qident(k)}" for k in spec.key)
        # every appended row is checked, a row with a NULL id (which matches no key) too
        rowids = [
            f"SELECT rowid FROM {table} WHERE rowid >= {earlier[raw[name]]}",
            f"SELECT r.rowid FROM {table} r SEMI JOIN ({keys[name]}) n ON {match}",
        ]
        if name == INTERACTIONS.name:
            rowids += [
                f"SELECT r.rowid FROM {table} r WHERE {_id_expr(key, 'r')} IN "
                f"(SELECT p.{key} FROM ({keys[parent]}) p)"
                for key, parent in (("learner_id", "learners"), ("course_id", "courses"))
            ]
        touched[name] = f"__touched_{name}"
        # a join per reason, not one scan ORing subqueries (which DuckDB ran as mark joins: 5.6 s against
        # 0.55 s for the three tables at a million learners)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {qident(touched[name])} AS SELECT * FROM {table} "
            f"WHERE rowid IN ({' UNION ALL '.join(rowids)})"
        )
    return touched


def _first(con, sql: str, params: list | None = None):
    return con.execute(sql + " ORDER BY _file, _row LIMIT 1", params or []).fetchone()


def _any_file(con, table: str) -> str:
    row = con.execute(f"SELECT _file FROM {qident(table)} LIMIT 1").fetchone()
    return row[0] if row else table


def _stage_table(
    con, spec: TableSpec, raw: str, rating_scale, policy: Policy, report: CleanReport, whole: bool = True
) -> str:
    """A temp table of ``raw``'s rows checked, repaired and deduplicated (``whole``: ``raw`` is the whole
    source table, not the rows an append touched)."""
    present = columns(con, raw)
    n = int(con.execute(f"SELECT count(*) FROM {qident(raw)}").fetchone()[0])
    report.rows_in[spec.name] = n
    file = _any_file(con, raw)
    for col in spec.required:
        if col not in present:
            raise ValidationError(
                file, "required column", f"the {spec.name} table needs a '{col}' column", col
            )
    if whole and n == 0 and spec.name == "courses":
        raise ValidationError(file, "non-empty", f"the {spec.name} table has no rows")

    select = []
    for col in present:
        if col.startswith("_"):
            continue
        column = spec.column(col)
        if column is None:
            select.append(qident(col))
            continue
        expr = _checked_expr(con, raw, column, rating_scale, policy, report, spec.name)
        select.append(f"{expr} AS {qident(col)}")

    order = "ts DESC NULLS LAST, _file DESC, _row DESC" if "ts" in present else "_file DESC, _row DESC"
    if spec.name != INTERACTIONS.name:
        order = "_file, _row"
    key_exprs = ", ".join(_id_expr(k) for k in spec.key)
    dup = con.execute(f"SELECT count(*) - count(DISTINCT ({key_exprs})) FROM {qident(raw)}").fetchone()[0]
    if dup:
        first = _first(
            con,
            f"SELECT _file, _row, {key_exprs} FROM (SELECT *, count(*) OVER (PARTITION BY {key_exprs}) AS n, "
            f"row_number() OVER (PARTITION BY {key_exprs} ORDER BY _file, _row) AS k FROM {qident(raw)}) "
            "WHERE n > 1 AND k > 1",
        )
        if policy.strict:
            raise ValidationError(
                first[0], "unique key", f"duplicate {spec.name} key", ", ".join(spec.key), first[1], first[2:]
            )
        rule = "kept the most recent row" if spec.name == INTERACTIONS.name else "kept the first row"
        report.repairs.append(
            Repair(
                spec.name, "duplicate key", int(dup), f"{rule}; first duplicate at {first[0]} row {first[1]}"
            )
        )

    tmp = f"__staged_{spec.name}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {qident(tmp)} AS SELECT {', '.join(select)}, _file, _row FROM "
        f"{qident(raw)} QUALIFY row_number() OVER (PARTITION BY {key_exprs} ORDER BY {order}) = 1"
    )
    return tmp


def _id_expr(col: str, table: str = "") -> str:
    return f"trim(CAST({table + '.' if table else ''}{qident(col)} AS VARCHAR))"


def _checked_expr(
    con, raw: str, column: Column, rating_scale, policy: Policy, report: CleanReport, table: str
) -> str:
    """Check one column of the raw table and return the SQL expression of its cleaned value."""
    c = qident(column.name)
    src = qident(raw)

    def fail(where: str, rule: str, message: str, expr: str | None = None) -> None:
        row = _first(con, f"SELECT _file, _row, {expr or c} FROM {src} WHERE {where}")
        if row is not None:
            raise ValidationError(row[0], rule, message, column.name, int(row[1]), row[2])

    if column.kind is Kind.ID:
        expr = _id_expr(column.name)
        fail(f"{c} IS NULL OR {expr} = ''", "missing id", "an id is empty")
        fail(
            f"length({expr}) > {MAX_ID_CHARS}", "id length", f"an id is longer than {MAX_ID_CHARS} characters"
        )
        return expr
    if column.kind is Kind.TEXT:
        text = f"CAST({c} AS VARCHAR)"
        if column.required:
            fail(f"{c} IS NULL OR trim({text}) = ''", "required value", f"{column.name} is empty")
        if column.allowed:
            allowed = ", ".join(f"'{v}'" for v in column.allowed)
            norm = f"lower(trim({text}))"
            fail(
                f"{c} IS NOT NULL AND {norm} NOT IN ({allowed})",
                "allowed values",
                f"{column.name} must be one of {', '.join(column.allowed)}",
            )
            return norm
        too_long = con.execute(
            f"SELECT count(*) FROM {src} WHERE length({text}) > {MAX_TEXT_CHARS}"
        ).fetchone()[0]
        if too_long:
            if policy.strict:
                fail(
                    f"length({text}) > {MAX_TEXT_CHARS}",
                    "text length",
                    f"text longer than {MAX_TEXT_CHARS} characters",
                    f"left({text}, 60)",
                )
            report.repairs.append(
                Repair(
                    table,
                    "text length",
                    int(too_long),
                    f"{column.name} truncated to {MAX_TEXT_CHARS} characters",
                )
            )
        return f"CASE WHEN trim({text}) = '' THEN NULL ELSE left({text}, {MAX_TEXT_CHARS}) END"
    if column.kind is Kind.BOOL:
        expr = f"TRY_CAST({c} AS BOOLEAN)"
        fail(f"{c} IS NOT NULL AND {expr} IS NULL", "type", "not a true/false value")
        return expr
    if column.kind is Kind.TIMESTAMP:
        expr = f"TRY_CAST({c} AS TIMESTAMP)"
        fail(f"{c} IS NOT NULL AND {expr} IS NULL", "type", "not a timestamp")
        fail(f"{expr} > now()::TIMESTAMP + INTERVAL 1 DAY", "range", "timestamp is in the future")
        fail(f"{expr} < TIMESTAMP '{EARLIEST_TS}'", "range", f"timestamp is before {EARLIEST_TS}")
        return expr
    # FLOAT
    expr = f"TRY_CAST({c} AS DOUBLE)"
    fail(f"{c} IS NOT NULL AND {expr} IS NULL", "type", "not a number")
    fail(f"isinf({expr})", "type", "not a finite number")  # NaN counts as missing
    low, high = column.min, column.max
    if column.name == "rating":
        if rating_scale is None:
            raise ValidationError(
                _any_file(con, raw),
                "rating scale",
                "the source has ratings but declares no rating scale",
                "rating",
            )
        low, high = rating_scale
    if low is not None:
        fail(f"{expr} < {float(low)!r}", "range", f"{column.name} is below {low:g}")
    if high is not None:
        fail(f"{expr} > {float(high)!r}", "range", f"{column.name} is above {high:g}")
    return f"CASE WHEN isnan({expr}) THEN NULL ELSE {expr} END"


def _drop_orphans(con, staged: dict[str, str], policy: Policy, report: CleanReport) -> None:
    inter = qident(staged["interactions"])
    total = int(con.execute(f"SELECT count(*) FROM {inter}").fetchone()[0])
    for key, parent in (("learner_id", "learners"), ("course_id", "courses")):
        orphan = f"NOT EXISTS (SELECT 1 FROM {qident(staged[parent])} p WHERE p.{key} = i.{key})"
        count = int(con.execute(f"SELECT count(*) FROM {inter} i WHERE {orphan}").fetchone()[0])
        if not count:
            continue
        first = _first(con, f"SELECT _file, _row, {key} FROM {inter} i WHERE {orphan}")
        share = count / total
        if policy.strict or share > policy.max_orphan_share:
            raise ValidationError(
                first[0],
                "referential integrity",
                f"{count} interactions ({share:.1%}) name a {key} missing from {parent}"
                + (
                    ""
                    if policy.strict
                    else f"; at most {policy.max_orphan_share:.0%} are dropped as a repair"
                ),
                key,
                int(first[1]),
                first[2],
            )
        con.execute(f"DELETE FROM {inter} i WHERE {orphan}")
        report.repairs.append(
            Repair("interactions", f"unknown {key}", count, f"dropped; first at {first[0]} row {first[1]}")
        )


def _drop_provenance(con, staged: dict[str, str]) -> None:
    for tmp in staged.values():
        con.execute(f"ALTER TABLE {qident(tmp)} DROP COLUMN _file")
        con.execute(f"ALTER TABLE {qident(tmp)} DROP COLUMN _row")


def check_rankable(con, staged: dict[str, str]) -> None:
    """Refuse staged tables the pipeline could rank nothing from (a catalogue without interactions passes).

    Two courses at least (one leaves nothing to choose), two learners with interactions (collaborative
    filtering, peers and the paired tests compare learners), a learner with ``MIN_TEST_COURSES`` courses (the
    test split holds out courses only from there: without a test learner nothing can be evaluated) and,
    without timestamps, one more (the validation carve then holds each learner's latest training rows from
    ``MIN_TEST_COURSES`` on: without a validation learner nothing can be tuned).
    """
    inter = qident(staged["interactions"])
    courses = int(con.execute(f"SELECT count(*) FROM {qident(staged['courses'])}").fetchone()[0])
    learners, most = con.execute(
        f"SELECT count(*), max(n) FROM (SELECT count(*) AS n FROM {inter} GROUP BY learner_id)"
    ).fetchone()
    timed = (
        "ts" in columns(con, staged["interactions"])
        and con.execute(f"SELECT count(ts) FROM {inter}").fetchone()[0]
    )
    if not learners:
        return
    if courses < 2:
        reason = f"the catalogue holds {courses} course: there is no other course to recommend"
    elif learners < 2:
        reason = (
            "one learner has interactions: collaborative filtering, peers and the evaluation compare two or "
            "more"
        )
    elif most < MIN_TEST_COURSES:
        reason = (
            f"no learner took {MIN_TEST_COURSES} or more courses (at most {most}): the test split holds out "
            "courses of such learners only, so nothing could be evaluated"
        )
    elif most == MIN_TEST_COURSES and not timed:
        reason = (
            f"no learner took more than {most} courses and there are no timestamps: after the test's course "
            f"no learner keeps the {MIN_TEST_COURSES} training courses the validation carve needs, so "
            "nothing could be tuned"
        )
    else:
        return
    table = "courses" if courses < 2 else "interactions"
    raise ValidationError(_any_file(con, staged[table]), "rankable data", f"nothing to rank: {reason}")
