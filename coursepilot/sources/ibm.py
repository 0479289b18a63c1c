"""The IBM Skills Network course-recommender format (ML321EN capstone).

Files: ``course_processed.csv`` (COURSE_ID, TITLE, DESCRIPTION), ``course_genre.csv`` (COURSE_ID,
TITLE and 14 binary genre columns), ``user_profile.csv`` (user and the 14 genre weights) and, when
the user has it, the enrollment table ``ratings.csv`` (user, item, rating: 3.0 completed, 2.0
audited). Genres become the course ``theme``; profile weights become learner columns
``interest_<genre>``; a rating of 3.0 sets ``completed``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..schema import LIST_SEPARATOR
from .base import SourceData, numeric, read_csv, with_provenance

RATING_SCALE = (2.0, 3.0)
COURSES, GENRES, PROFILES, RATINGS = (
    "course_processed.csv",
    "course_genre.csv",
    "user_profile.csv",
    "ratings.csv",
)


def load(path: str | Path) -> SourceData:
    folder = Path(path)
    files = [folder / COURSES]
    processed = read_csv(folder / COURSES, ["COURSE_ID", "TITLE", "DESCRIPTION"])
    courses = with_provenance(
        pd.DataFrame(
            {
                "course_id": processed["COURSE_ID"],
                "title": processed["TITLE"],
                "description": processed["DESCRIPTION"],
            }
        ),
        folder / COURSES,
    )
    if (folder / GENRES).exists():
        genre_table = read_csv(folder / GENRES, ["COURSE_ID"])
        genres = [c for c in genre_table.columns if c not in ("COURSE_ID", "TITLE")]
        flags = pd.DataFrame(
            {g: numeric(genre_table, g, folder / GENRES).fillna(0).astype(bool) for g in genres}
        )
        theme = flags.apply(lambda row: LIST_SEPARATOR.join(g for g, on in row.items() if on) or None, axis=1)
        courses = courses.merge(
            pd.DataFrame({"course_id": genre_table["COURSE_ID"], "theme": theme}).drop_duplicates(
                "course_id"
            ),
            on="course_id",
            how="left",
        )
        files.append(folder / GENRES)

    interactions = pd.DataFrame({"learner_id": pd.Series(dtype=str), "course_id": pd.Series(dtype=str)})
    interactions = with_provenance(interactions, folder / RATINGS)
    if (folder / RATINGS).exists():
        ratings = read_csv(folder / RATINGS, ["user", "item", "rating"])
        rating = pd.to_numeric(ratings["rating"], errors="coerce")
        interactions = with_provenance(
            pd.DataFrame(
                {
                    "learner_id": ratings["user"],
                    "course_id": ratings["item"],
                    "rating": ratings["rating"],
                    "completed": rating.map(lambda r: None if pd.isna(r) else bool(r >= 3.0)),
                }
            ),
            folder / RATINGS,
        )
        files.append(folder / RATINGS)

    if (folder / PROFILES).exists():
        profiles = read_csv(folder / PROFILES, ["user"])
        learners = profiles.rename(columns={"user": "learner_id"})
        learners = learners.rename(
            columns={c: f"interest_{c}" for c in learners.columns if c != "learner_id"}
        )
        for col in learners.columns[1:]:
            learners[col] = numeric(learners, col, folder / PROFILES)
        learners = with_provenance(learners, folder / PROFILES)
        files.append(folder / PROFILES)
    else:
        learners = interactions.drop_duplicates("learner_id")[["learner_id", "_file", "_row"]]
    return SourceData("ibm", learners, courses, interactions, RATING_SCALE, files, explicit_ratings=False)
