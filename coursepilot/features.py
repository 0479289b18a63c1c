"""Per-learner performance and engagement features (first paper, section 3.1), from training data.

Each feature names the optional columns it needs; a feature whose columns the source lacks is left
out (and reported), never filled with invented values. Values are min-max normalised, equation (1):
x' = (x - min x) / (max x - min x), with a constant column mapped to 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from .splits import train_interactions_sql
from .warehouse import columns


@dataclass(frozen=True)
class Feature:
    name: str
    sql: str
    needs: tuple[str, ...]  # interaction columns ("courses.x" for a course column)
    doc: str
    performance: bool = False  # used by the threshold rule


FEATURES = (
    Feature("courses_taken", "count(*)", (), "how many courses the learner took"),
    Feature("avg_grade", "avg(i.grade)", ("grade",), "average grade, 0-100", performance=True),
    Feature(
        "courses_completed",
        "sum(CASE WHEN i.completed THEN 1 ELSE 0 END)",
        ("completed",),
        "courses completed",
    ),
    Feature(
        "completion_rate",
        "avg(CASE WHEN i.completed THEN 1.0 ELSE 0.0 END)",
        ("completed",),
        "share of taken courses completed",
        performance=True,
    ),
    Feature("avg_rating", "avg((i.rating - ?) / (? - ?))", ("rating",), "average rating given, scaled 0-1"),
    Feature("avg_watch_pct", "avg(i.watch_pct)", ("watch_pct",), "average share watched", performance=True),
    Feature(
        "active_weeks",
        "count(DISTINCT date_trunc('week', i.ts))",
        ("ts",),
        "how often: distinct active weeks",
    ),
    Feature(
        "courses_per_week",
        "count(*) / count(DISTINCT date_trunc('week', i.ts))",
        ("ts",),
        "how often: courses started per active week",
    ),
    Feature(
        "engaged_minutes",
        "sum(i.watch_pct / 100.0 * c.duration_min)",
        ("watch_pct", "courses.duration_min"),
        "how long: minutes watched",
    ),
    Feature("total_clicks", "sum(i.clicks)", ("clicks",), "how much: page views or clicks"),
)


INPUTS = "inputs_fp"
"""The stored column of each learner's fingerprint of the rows their features were computed from (training
interactions with each course's duration): the labels' nightly compares it (coursepilot.kept_labels)."""


@dataclass
class FeatureTable:
    raw: pd.DataFrame  # learner_id + raw feature values
    normalised: pd.DataFrame  # learner_id + min-max normalised values
    used: list[str]
    missing: dict[str, tuple[str, ...]]  # feature -> the columns it lacked
    inputs: pd.Series | None = None  # INPUTS per learner, in the rows' order

    @property
    def performance(self) -> list[str]:
        return [f.name for f in FEATURES if f.performance and f.name in self.used]


def min_max(frame: pd.DataFrame) -> pd.DataFrame:
    """Equation (1) per column; a constant column becomes 0; missing values stay missing."""
    low, high = frame.min(), frame.max()
    out = (frame - low) / (high - low).where(high > low)
    for column in frame.columns[~(high > low).to_numpy()]:
        out[column] = frame[column].where(frame[column].isna(), 0.0)
    return out


def learner_features(
    con: duckdb.DuckDBPyConnection, rating_scale: tuple[float, float] | None
) -> FeatureTable:
    """Features of every learner with training interactions (a missing value stays NaN)."""
    have = set(columns(con, "interactions")) | {f"courses.{c}" for c in columns(con, "courses")}
    if rating_scale is None:
        have.discard("rating")
    used = [f for f in FEATURES if set(f.needs) <= have]
    missing = {f.name: tuple(c for c in f.needs if c not in have) for f in FEATURES if f not in used}
    params: list = []
    for f in used:
        if f.name == "avg_rating":
            low, high = rating_scale
            params += [low, high, low]
    select = ", ".join(f"CAST({f.sql} AS DOUBLE) AS {f.name}" for f in used)
    duration = "c.duration_min" if "courses.duration_min" in have else "NULL"
    # hashes of the rows, not the features: DuckDB sums floats in no fixed order, integers exactly
    raw = con.execute(
        f"SELECT i.learner_id, {select}, hash(sum(hash(i, {duration})::HUGEINT), count(*)) AS {INPUTS} "
        f"FROM ({train_interactions_sql(con)}) i LEFT JOIN courses c USING (course_id) "
        "GROUP BY i.learner_id ORDER BY i.learner_id",
        params,
    ).df()
    inputs = raw.pop(INPUTS)
    names = [f.name for f in used]
    normalised = pd.concat([raw[["learner_id"]], min_max(raw[names])], axis=1)
    return FeatureTable(raw, normalised, names, missing, inputs)


def store_frame(features: FeatureTable) -> pd.DataFrame:
    """The ``learner_features`` table: raw values, ``<name>_norm`` normalised ones, INPUTS if known."""
    inputs = [] if features.inputs is None else [features.inputs.rename(INPUTS)]
    return pd.concat(
        [features.raw, features.normalised.drop(columns="learner_id").add_suffix("_norm"), *inputs], axis=1
    )


def load_features(con: duckdb.DuckDBPyConnection) -> FeatureTable:
    """The features as stored by the ``learner_features`` asset."""
    frame = con.execute("SELECT * FROM learner_features ORDER BY learner_id").df()
    used = [f.name for f in FEATURES if f.name in frame]
    normalised = frame[["learner_id", *[f"{n}_norm" for n in used]]].rename(
        columns=lambda c: c.removesuffix("_norm")
    )
    return FeatureTable(frame[["learner_id", *used]], normalised, used, {}, frame.get(INPUTS))
