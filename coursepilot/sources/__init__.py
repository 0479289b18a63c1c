"""Source adapters: one per input format, each mapping its files onto the canonical tables."""

from __future__ import annotations

import os
from pathlib import Path

from . import catalog, elearning, generic, ibm, oulad, synthetic
from .base import SourceData

FORMATS = {
    "synthetic": "folder written by `coursepilot generate` (the default source)",
    "ibm": "IBM Skills Network: course_processed.csv, course_genre.csv, user_profile.csv, ratings.csv",
    "elearning": "MARS e-learning tables (items_en, users_en, explicit/implicit ratings) or Kaggle joined "
    "files",
    "oulad": "Open University: studentInfo, courses, studentRegistration, studentAssessment, assessments, "
    "studentVle",
    "catalog": "edX or Coursera 2021 catalogue CSV (courses only, no interactions)",
    "generic": "CSV or Parquet files plus a YAML column mapping",
}
SOURCE_ENV = {
    "format": "COURSEPILOT_SOURCE_FORMAT",
    "path": "COURSEPILOT_SOURCE_PATH",
    "mapping": "COURSEPILOT_SOURCE_MAPPING",
    "size": "COURSEPILOT_SYNTHETIC_SIZE",
    "seed": "COURSEPILOT_SEED",
}
"""The environment variables that choose the data source: the CLI's defaults and the code location's."""


def source_env() -> dict[str, str]:
    """{setting: value} of the ``SOURCE_ENV`` variables that are set, read when called."""
    return {setting: os.environ[var] for setting, var in SOURCE_ENV.items() if os.environ.get(var)}


_LOADERS = {
    "synthetic": synthetic.load,
    "ibm": ibm.load,
    "elearning": elearning.load,
    "oulad": oulad.load,
    "catalog": catalog.load,
}


def load_source(format: str, path: str | Path, mapping: str | Path | None = None) -> SourceData:
    """Read a source of the given format into canonical raw tables."""
    if format not in FORMATS:
        raise ValueError(f"unknown source format {format!r}; choose one of {', '.join(FORMATS)}")
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such file or folder for source format {format!r}")
    if format == "generic":
        return generic.load(path, mapping)
    return _LOADERS[format](path)


__all__ = ["FORMATS", "SOURCE_ENV", "SourceData", "load_source", "source_env"]
