"""The evaluation split, shared by every model (DuckDB SQL, so it scales to 20M interactions).

Each interaction gets one of:
- ``cold_learner``: every interaction of a seeded sample of learners (only their profile is known);
- ``cold_course``: every interaction with a seeded sample of courses (removed from training);
- ``test``: per remaining learner with at least ``min_interactions``, the last ``test_share`` of
  their interactions by time (seeded random order where there are no timestamps), at least one
  and never all of them, so every test learner keeps something to train on;
- ``train``: everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from .changes import Changes, inputs_table, learner_changes
from .read_cache import cache_dir, cached_frame, ids_digest
from .warehouse import Merge, columns, described, learner_id_table, qident, replace_tables, table_exists

SPLIT_TABLE = "split"
SPLIT_VERSION = 1  # bump when the rule changes: the next incremental split then splits every learner again
MERGED_SHARE = 0.25
"""Above this share of learners split again, the table is written whole: at a million learners merging 14% of
them took 4.8 s against 13.3 s for the whole table, and 84% 33.3 s (BENCHMARKS.md)."""
CODED_VERSION = 1  # bump when coded_interactions reads differently: cached reads are then read again


@dataclass(frozen=True)
class SplitConfig:
    test_share: float = 0.2
    min_interactions: int = 3
    cold_learner_share: float = 0.02
    cold_course_share: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("test_share", "cold_learner_share", "cold_course_share"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.min_interactions < 2:
            raise ValueError("min_interactions must be at least 2 (one to train on, one to test)")


def _sample(column: str, share: float, seed: int) -> str:
    """A deterministic, seeded coin flip per id (hash-based, independent of row order)."""
    return f"(hash({column} || ':' || {int(seed)}) % 1000000) < {int(round(share * 1_000_000))}"


def _tiebreak(seed: int) -> str:
    """A seeded order among one learner's interactions at the same time (or without times)."""
    return f"hash(learner_id || '/' || course_id || ':' || {int(seed)})"


def _split_sql(con, config: SplitConfig, where: str = "") -> str:
    """The ``SELECT`` of the split of every interaction (of those ``where`` keeps: whole learners), with its
    columns (but a column of its own named ``split``, which the label replaces); the window's own columns are
    named ``__...`` so as not to meet a column that a source keeps."""
    present = columns(con, "interactions")
    carried = ", ".join(qident(c) for c in present if c != "split")
    order = "ts, " if "ts" in present else ""
    # a quoted literal: unquoted, DuckDB reads a DECIMAL that can round to another double
    seed, share = int(config.seed), f"CAST('{float(config.test_share)!r}' AS DOUBLE)"
    return f"""
        WITH flagged AS (
            SELECT {carried},
                   {_sample("learner_id", config.cold_learner_share, seed)} AS __cold_learner,
                   {_sample("course_id", config.cold_course_share, seed + 1)} AS __cold_course,
                   {_tiebreak(seed)} AS __tiebreak
            FROM interactions {where}
        ), ranked AS (
            -- one pass: a learner's warm rows are ranked among themselves, apart from their cold-course rows
            SELECT * EXCLUDE (__tiebreak), row_number() OVER w AS __k, count(*) OVER w AS __n
            FROM flagged
            WINDOW w AS (PARTITION BY learner_id, __cold_learner OR __cold_course ORDER BY {order}__tiebreak
                         ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
        )
        SELECT * EXCLUDE (__cold_learner, __cold_course, __k, __n),
               CASE WHEN __cold_learner THEN 'cold_learner' WHEN __cold_course THEN 'cold_course'
                    WHEN __n >= {int(config.min_interactions)}
                         AND __k > __n - least(__n - 1, greatest(1, CAST(round(__n * {share}) AS BIGINT)))
                    THEN 'test' ELSE 'train' END AS split
        FROM ranked
    """


def build_split(con: duckdb.DuckDBPyConnection, config: SplitConfig = SplitConfig()) -> dict[str, int]:
    """Replace the ``split`` table whole and return its counts (:func:`update_split`)."""
    return update_split(con, config, incremental=False)[0]


def update_split(
    con: duckdb.DuckDBPyConnection, config: SplitConfig = SplitConfig(), incremental: bool = True
) -> tuple[dict[str, int], Changes]:
    """Write the ``split`` table; return its counts and which learners were split again.

    ``split`` holds every interaction with all its columns and its ``split``: the stages read their rows from
    it without joining it back to ``interactions`` (a join of 20M rows on two text keys, about 2 s a read
    at a million learners). A learner's split depends on their own interactions only, so with
    ``incremental`` only the learners whose interactions (or the settings, or the interactions' columns)
    changed since the last split are split again, and the others keep their rows; the table equals a whole
    split. Above ``MERGED_SHARE`` of the learners it is written whole, which is then cheaper; when nothing
    changed it is not written (its write stamp, which names cached reads, stays)."""
    schema = described(con, "SELECT * FROM interactions")  # a row's hash does not see its column names
    context = f"split v{SPLIT_VERSION} {config} {schema}"
    changes = learner_changes(con, SPLIT_TABLE, "SELECT * FROM interactions", context, incremental)
    whole = _whole_reason(con, changes)
    if whole and not changes.everyone:
        changes = replace(changes, changed=changes.ids(), reason=whole)
    inputs = {inputs_table(SPLIT_TABLE): changes.fingerprints}
    if changes.everyone:
        replace_tables(con, {SPLIT_TABLE: _split_sql(con, config), **inputs})
    elif len(changes.changed) or changes.removed:
        con.register("__split_again", learner_id_table(changes.changed))
        try:
            rows = _split_sql(con, config, "WHERE learner_id IN (SELECT learner_id FROM __split_again)")
            replace_tables(con, inputs, merged={SPLIT_TABLE: Merge(rows, changes.kept_ids())})
        finally:
            con.unregister("__split_again")
    counts = con.execute(f"SELECT split, count(*) FROM {SPLIT_TABLE} GROUP BY 1 ORDER BY 1").fetchall()
    return dict(counts), changes


def _whole_reason(con: duckdb.DuckDBPyConnection, changes: Changes) -> str:
    """Why the split is written whole although few learners' interactions changed ("" when it is not)."""
    if table_exists(con, SPLIT_TABLE) and _uncarried(con):
        return "the stored split lacks columns of the interactions"  # an earlier version's: no rows to keep
    if len(changes.changed) > MERGED_SHARE * changes.fingerprints.num_rows:
        changed = len(changes.changed)
        return f"{changed:,} learners' interactions changed, more than {MERGED_SHARE:.0%}: written whole"
    return ""


def require_carried(con: duckdb.DuckDBPyConnection) -> None:
    """Refuse a ``split`` table without the interactions' columns (written before it carried them), which
    every reader of its rows would misread: the split step writes it again."""
    missing = _uncarried(con)
    if missing:
        raise ValueError(
            f"the split table has no column {missing[0]!r} of the interactions: it was written by an earlier "
            "version; materialize split again"
        )


def _uncarried(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The interactions' columns that the ``split`` table lacks."""
    carried = set(columns(con, SPLIT_TABLE))
    return [c for c in columns(con, "interactions") if c not in carried]


def train_interactions_sql(con: duckdb.DuckDBPyConnection) -> str:
    """SQL for the training interactions (all interaction columns), for stages that must not see test."""
    require_carried(con)
    return f"SELECT * EXCLUDE (split) FROM {SPLIT_TABLE} WHERE split = 'train'"


def coded_interactions(
    con: duckdb.DuckDBPyConnection, splits: tuple[str, ...], learner_ids, course_ids
) -> pd.DataFrame:
    """Interactions of ``splits`` with ``row`` / ``col`` (positions in ``learner_ids`` / ``course_ids``) in
    place of the ids.

    The join to positions runs in DuckDB, so no id string reaches Python (at 20M interactions that
    is most of the cost of building a matrix). Interactions of learners or courses not listed are
    left out; rows come ordered by (row, col), the same on every call.

    Kept in the read cache (:mod:`~coursepilot.read_cache`) while ``interactions`` and ``split`` hold the
    same rows. Another list of learners (the few whose inputs changed, say) takes its rows from the entry of
    every learner of ``learners`` in id order, which the other stages of the run read too.
    """
    require_carried(con)
    rest = [c for c in columns(con, "interactions") if c not in ("learner_id", "course_id", "split")]
    learner_ids = np.asarray(learner_ids, dtype=object)
    everyone = _cached_learners(con)
    subset = (
        everyone is not None
        and len(learner_ids) > 0
        and pd.Index(learner_ids).is_unique
        and not np.array_equal(everyone, learner_ids)
        and (pd.Index(everyone).get_indexer(learner_ids) >= 0).all()
    )
    listed = everyone if subset else learner_ids
    key = f"coded v{CODED_VERSION} {splits} {rest} {ids_digest(listed)} {ids_digest(course_ids)}"
    coded = cached_frame(
        con, ("interactions", SPLIT_TABLE), key, lambda: _coded(con, splits, listed, course_ids, rest)
    )
    return coded if listed is learner_ids else _recoded(coded, everyone, learner_ids)


def every_learner(con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """Ids of every learner of ``learners``, in id order."""
    return np.asarray(
        [r[0] for r in con.execute("SELECT learner_id FROM learners ORDER BY 1").fetchall()], dtype=object
    )


def _cached_learners(con) -> np.ndarray | None:
    """:func:`every_learner`, when reads are cached (None otherwise)."""
    if cache_dir(con) is None or not table_exists(con, "learners"):
        return None
    return every_learner(con)


def _recoded(coded: pd.DataFrame, everyone: np.ndarray, learner_ids: np.ndarray) -> pd.DataFrame:
    """The rows of ``coded`` (rows are positions in ``everyone``) of ``learner_ids``, rows renumbered."""
    position = pd.Index(learner_ids).get_indexer(everyone)[coded["row"].to_numpy()]
    kept = coded[position >= 0].reset_index(drop=True)
    kept["row"] = position[position >= 0].astype(np.int32)
    if len(kept) and (np.diff(kept["row"].to_numpy()) < 0).any():  # ``learner_ids`` out of id order
        kept = kept.iloc[np.argsort(kept["row"].to_numpy(), kind="stable")].reset_index(drop=True)
    return kept


def _coded(con, splits: tuple[str, ...], learner_ids, course_ids, rest: list[str]) -> pd.DataFrame:
    con.register(
        "_coded_rows",
        pa.table(
            {
                "learner_id": pa.array(learner_ids, pa.string()),
                "row": pa.array(np.arange(len(learner_ids)), pa.int32()),
            }
        ),
    )
    con.register(
        "_coded_cols",
        pa.table(
            {
                "course_id": pa.array(course_ids, pa.string()),
                "col": pa.array(np.arange(len(course_ids)), pa.int32()),
            }
        ),
    )
    try:
        marks = ", ".join("?" for _ in splits)
        return con.execute(
            f"SELECT r.row, c.col{''.join(f', s.{qident(x)}' for x in rest)} FROM {SPLIT_TABLE} s "
            "JOIN _coded_rows r USING (learner_id) JOIN _coded_cols c USING (course_id) "
            f"WHERE s.split IN ({marks}) ORDER BY r.row, c.col",
            list(splits),
        ).df()
    finally:
        con.unregister("_coded_rows")
        con.unregister("_coded_cols")


def training_learners(con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """Ids of the learners with training rows, in id order."""
    rows = con.execute("SELECT DISTINCT learner_id FROM split WHERE split = 'train' ORDER BY 1").fetchall()
    return np.asarray([r[0] for r in rows], dtype=object)
