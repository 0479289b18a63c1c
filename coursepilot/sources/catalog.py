"""Course catalogues with difficulty labels and no interactions: edX and Coursera (Kaggle 2021).

The format of each CSV file is recognised by its header:
- edX: ``title``, ``Level`` (Introductory / Intermediate / Advanced), ``summary``,
  ``course_description``, ``subject``, ``course_url``, ...;
- Coursera 2021: ``Course Name``, ``University``, ``Difficulty Level`` (Beginner / Intermediate /
  Advanced / Conversant / Not Calibrated), ``Course Rating``, ``Course URL``, ``Course Description``,
  ``Skills``.
The course id is the last segment of the course URL (``row-N`` where a row has no URL).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..schema import LIST_SEPARATOR, ValidationError
from .base import SourceData, read_csv, split_list, with_provenance

EDX = ("title", "Level", "course_url")
COURSERA = ("Course Name", "Difficulty Level", "Course URL", "Course Description")
LEVELS = {
    "introductory": "beginner",
    "beginner": "beginner",
    "intermediate": "intermediate",
    "conversant": "intermediate",
    "advanced": "advanced",
    "not calibrated": None,
}


def _ids(urls: pd.Series) -> pd.Series:
    slug = urls.fillna("").str.rstrip("/").str.rsplit("/", n=1).str[-1].str.strip()
    fallback = pd.Series([f"row-{i + 1}" for i in range(len(urls))], index=urls.index)
    return slug.where(slug != "", fallback)


def _difficulty(level: pd.Series, file: Path) -> pd.Series:
    normalised = level.str.strip().str.lower()
    unknown = normalised.notna() & ~normalised.isin(list(LEVELS))
    if unknown.any():
        row = int(unknown.to_numpy().nonzero()[0][0])
        raise ValidationError(
            str(file),
            "allowed values",
            f"unknown difficulty level (known: {', '.join(LEVELS)})",
            level.name,
            row + 1,
            level.iloc[row],
        )
    return normalised.map(LEVELS)


def _edx(frame: pd.DataFrame, file: Path) -> pd.DataFrame:
    summary, body = frame.get("summary"), frame.get("course_description")
    description = body.fillna(summary) if body is not None else summary
    out = pd.DataFrame(
        {
            "course_id": _ids(frame["course_url"]),
            "title": frame["title"],
            "description": description,
            "difficulty": _difficulty(frame["Level"], file),
            "theme": frame.get("subject"),
        }
    )
    for extra in ("institution", "language", "course_effort", "course_length", "course_type"):
        if extra in frame:
            out[extra] = frame[extra]
    if "n_enrolled" in frame:
        out["n_enrolled"] = pd.to_numeric(frame["n_enrolled"].str.replace(",", ""), errors="coerce")
    return out


def _coursera(frame: pd.DataFrame, file: Path) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "course_id": _ids(frame["Course URL"]),
            "title": frame["Course Name"],
            "description": frame["Course Description"],
            "difficulty": _difficulty(frame["Difficulty Level"], file),
        }
    )
    if "Skills" in frame:
        out["skills"] = frame["Skills"].map(lambda v: LIST_SEPARATOR.join(split_list(v)) or None)
    if "University" in frame:
        out["institution"] = frame["University"]
    if "Course Rating" in frame:
        out["avg_rating"] = pd.to_numeric(frame["Course Rating"], errors="coerce")  # "Not Calibrated" -> NULL
    return out


def load(path: str | Path) -> SourceData:
    """One catalogue CSV, or every recognised catalogue CSV in a folder."""
    path = Path(path)
    candidates = [path] if path.is_file() else sorted(path.glob("*.csv"))
    frames, used = [], []
    for file in candidates:
        frame = read_csv(file)
        if set(EDX) <= set(frame.columns):
            frames.append(with_provenance(_edx(frame, file), file))
            used.append(file)
        elif set(COURSERA) <= set(frame.columns):
            frames.append(with_provenance(_coursera(frame, file), file))
            used.append(file)
        elif path.is_file():
            raise ValidationError(
                str(file),
                "catalog header",
                f"not an edX ({', '.join(EDX)}) or Coursera ({', '.join(COURSERA)}) catalogue",
            )
    if not frames:
        raise ValidationError(str(path), "catalog files", "no edX or Coursera catalogue CSV found")
    courses = pd.concat(frames, ignore_index=True)
    empty = pd.DataFrame(
        {
            "learner_id": pd.Series(dtype=str),
            "course_id": pd.Series(dtype=str),
            "_file": pd.Series(dtype=str),
            "_row": pd.Series(dtype="int64"),
        }
    )
    return SourceData("catalog", empty[["learner_id", "_file", "_row"]], courses, empty, None, used)
