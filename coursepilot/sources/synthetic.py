"""The embedded default: a folder written by :mod:`coursepilot.synthetic` (Parquet files)."""

from __future__ import annotations

from pathlib import Path

from .base import SourceData, arrow_with_provenance, read_parquet

RATING_SCALE = (1.0, 5.0)
REQUIRED = {
    "learners": ["learner_id"],
    "courses": ["course_id", "title"],
    "interactions": ["learner_id", "course_id"],
}


def load(path: str | Path) -> SourceData:
    """Read ``learners``, ``courses``, ``interactions`` and the ``truth_*`` tables of a generated folder."""
    folder = Path(path)
    files = {name: folder / f"{name}.parquet" for name in REQUIRED}
    tables = {
        name: arrow_with_provenance(read_parquet(file, REQUIRED[name]), file) for name, file in files.items()
    }
    truth = {
        name: read_parquet(folder / f"{name}.parquet")
        for name in ("truth_learners", "truth_courses")
        if (folder / f"{name}.parquet").exists()
    }
    return SourceData(
        "synthetic",
        tables["learners"],
        tables["courses"],
        tables["interactions"],
        RATING_SCALE,
        files=list(files.values()),
        truth=truth,
    )
