"""The e-learning (MARS, Mandarine Academy) format of the second paper.

Reads either the MARS tables (``items_en.csv``, ``users_en.csv``, ``explicit_ratings_en.csv`` and,
when present, the page-view table ``implicit_ratings_en.csv``) or the Kaggle joined file(s) of the
same data (one row per rating with the item's and the user's columns repeated).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..schema import LIST_SEPARATOR, ValidationError
from .base import SourceData, read_csv, split_list, with_provenance

RATING_SCALE = (1.0, 10.0)
ITEMS, USERS, EXPLICIT, IMPLICIT = (
    "items_en.csv",
    "users_en.csv",
    "explicit_ratings_en.csv",
    "implicit_ratings_en.csv",
)
JOINED_COLUMNS = (
    "user_id",
    "item_id",
    "name",
    "description",
    "duration",
    "Difficulty",
    "Software",
    "job",
    "theme",
    "watch_percentage",
    "rating",
)


def _joined_list(series: pd.Series) -> pd.Series:
    return series.map(lambda v: LIST_SEPARATOR.join(split_list(v)) or None)


def _courses(items: pd.DataFrame, name: str, theme: str, job: str | None) -> pd.DataFrame:
    courses = pd.DataFrame(
        {
            "course_id": items["item_id"],
            "title": items[name],
            "description": items["description"],
            "difficulty": items["Difficulty"].str.strip().str.lower(),
            "theme": _joined_list(items[theme]),
            "software": _joined_list(items["Software"]),
            "duration_min": pd.to_numeric(items["duration"], errors="coerce") / 60.0,
        },
        index=items.index,
    )
    if job:
        courses["job"] = _joined_list(items[job])
    for extra in ("type", "nb_views", "language"):
        if extra in items:
            courses[extra] = items[extra]
    return courses


def _ratings(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "learner_id": frame["user_id"],
            "course_id": frame["item_id"],
            "watch_pct": frame["watch_percentage"],
            "rating": frame["rating"],
        },
        index=frame.index,
    )
    if "created_at" in frame:
        out["ts"] = frame["created_at"]
    return out


def _with_views(interactions: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Merge page views: ``clicks`` per (learner, course); view-only pairs become interactions too."""
    views = with_provenance(read_csv(path, ["item_id", "user_id", "created_at"]), path)
    views = views.rename(columns={"user_id": "learner_id", "item_id": "course_id", "created_at": "ts"})
    views["ts"] = pd.to_datetime(views["ts"], errors="coerce")
    per_pair = (
        views.sort_values("ts")
        .groupby(["learner_id", "course_id"], sort=False)
        .agg(clicks=("ts", "size"), ts=("ts", "first"), _file=("_file", "first"), _row=("_row", "first"))
        .reset_index()
    )
    merged = interactions.merge(
        per_pair[["learner_id", "course_id", "clicks"]], on=["learner_id", "course_id"], how="left"
    )
    merged["clicks"] = merged["clicks"].fillna(0)
    seen = interactions.set_index(["learner_id", "course_id"]).index
    view_only = per_pair[~per_pair.set_index(["learner_id", "course_id"]).index.isin(seen)]
    return pd.concat([merged, view_only], ignore_index=True)


def _load_tables(folder: Path) -> SourceData:
    items_file, users_file, ratings_file = folder / ITEMS, folder / USERS, folder / EXPLICIT
    items = read_csv(
        items_file, ["item_id", "name", "description", "Difficulty", "Software", "Theme", "duration"]
    )
    courses = with_provenance(_courses(items, "name", "Theme", "Job" if "Job" in items else None), items_file)
    users = read_csv(users_file, ["user_id"])
    learners = with_provenance(
        pd.DataFrame({"learner_id": users["user_id"], "job": users.get("job")}), users_file
    )
    ratings = read_csv(ratings_file, ["user_id", "item_id", "watch_percentage", "created_at", "rating"])
    interactions = with_provenance(_ratings(ratings), ratings_file)
    files = [items_file, users_file, ratings_file]
    if (folder / IMPLICIT).exists():
        interactions = _with_views(interactions, folder / IMPLICIT)
        files.append(folder / IMPLICIT)
    return SourceData("elearning", learners, courses, interactions, RATING_SCALE, files)


def _load_joined(files: list[Path]) -> SourceData:
    frames = [with_provenance(read_csv(f, JOINED_COLUMNS), f) for f in files]
    joined = pd.concat(frames, ignore_index=True)
    first_items = joined.drop_duplicates("item_id")
    courses = _courses(first_items, "name", "theme", None)
    courses[["_file", "_row"]] = first_items[["_file", "_row"]]
    first_users = joined.sort_values("job", na_position="last").drop_duplicates("user_id").sort_index()
    learners = first_users[["user_id", "job", "_file", "_row"]].rename(columns={"user_id": "learner_id"})
    interactions = _ratings(joined)
    interactions[["_file", "_row"]] = joined[["_file", "_row"]]
    return SourceData("elearning", learners, courses, interactions, RATING_SCALE, files)


def load(path: str | Path) -> SourceData:
    """A MARS folder, a folder of Kaggle joined files, or one joined file."""
    path = Path(path)
    if path.is_file():
        return _load_joined([path])
    if (path / ITEMS).exists():
        return _load_tables(path)
    joined = []
    for candidate in sorted(path.glob("*.csv")):
        with open(candidate, encoding="utf-8-sig", errors="replace") as handle:
            header = {c.strip() for c in handle.readline().split(",")}
        if set(JOINED_COLUMNS) <= header:
            joined.append(candidate)
    if not joined:
        raise ValidationError(
            str(path),
            "elearning files",
            f"expected {ITEMS}, {USERS} and {EXPLICIT}, or CSV files with columns "
            f"{', '.join(JOINED_COLUMNS)}",
        )
    return _load_joined(joined)
