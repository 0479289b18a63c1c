"""Any CSV or Parquet files plus a YAML mapping of their columns onto the canonical tables.

Mapping file (paths relative to the mapping file's folder unless a data folder is given)::

    rating_scale: [1, 5]        # required when a rating column is mapped
    watch_scale: 100            # 100 when watch_pct is 0-100, 1 when it is a 0-1 fraction
    learners:                   # optional: derived from the interactions when absent
      file: users.csv
      columns: {learner_id: user, job: occupation}
    courses:
      file: courses.parquet
      columns: {course_id: id, title: name, description: text, difficulty: level}
      values: {difficulty: {easy: beginner, medium: intermediate, hard: advanced}}   # optional
      keep: [language]          # optional: extra source columns to carry through unchanged
    interactions:
      file: events.csv
      columns: {learner_id: user, course_id: item, rating: stars, ts: time}
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from ..schema import TABLES, ValidationError
from .base import SourceData, numeric, read_table, with_provenance

SECTION_KEYS = {"file", "columns", "values", "keep"}


def _mapping(file: Path) -> dict:
    try:
        mapping = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(str(file), "file exists", "mapping file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValidationError(str(file), "mapping syntax", f"not valid YAML: {err}") from None
    if not isinstance(mapping, dict) or "courses" not in mapping:
        raise ValidationError(str(file), "mapping", "the mapping needs at least a 'courses' section")
    unknown = set(mapping) - {*TABLES, "rating_scale", "watch_scale"}
    if unknown:
        raise ValidationError(str(file), "mapping", f"unknown top-level keys: {', '.join(sorted(unknown))}")
    return mapping


def _section(name: str, section: dict, base: Path, mapping_file: Path) -> pd.DataFrame:
    where = f"{mapping_file} [{name}]"
    if not isinstance(section, dict) or "file" not in section or "columns" not in section:
        raise ValidationError(where, "mapping", "each section needs 'file' and 'columns'")
    if set(section) - SECTION_KEYS:
        raise ValidationError(
            where, "mapping", f"unknown keys: {', '.join(sorted(set(section) - SECTION_KEYS))}"
        )
    columns: dict = section["columns"]
    spec = TABLES[name]
    unknown = [c for c in columns if spec.column(c) is None]
    if unknown:
        raise ValidationError(
            where,
            "mapping",
            f"'{unknown[0]}' is not a column of {name} (known: {', '.join(c.name for c in spec.columns)})",
            unknown[0],
        )
    file = (base / section["file"]).resolve()
    keep = list(section.get("keep") or [])
    frame = read_table(file, [*columns.values(), *keep], ids=[columns[k] for k in spec.key if k in columns])
    out = pd.DataFrame({canonical: frame[source] for canonical, source in columns.items()}, index=frame.index)
    for column, values in (section.get("values") or {}).items():
        out[column] = out[column].map(lambda v, m=values: m.get(v, v))
    for extra in keep:
        out[extra] = frame[extra]
    return with_provenance(out, file)


def load(path: str | Path, mapping: str | Path | None = None) -> SourceData:
    """``path`` is the mapping file, or a data folder when ``mapping`` names the mapping file."""
    mapping_file = Path(mapping or path)
    base = Path(path) if mapping else mapping_file.parent
    spec = _mapping(mapping_file)
    tables = {name: _section(name, spec[name], base, mapping_file) for name in TABLES if name in spec}
    if "interactions" not in tables:
        tables["interactions"] = with_provenance(
            pd.DataFrame({"learner_id": pd.Series(dtype=str), "course_id": pd.Series(dtype=str)}),
            mapping_file,
        )
    inter = tables["interactions"]
    watch_scale = float(spec.get("watch_scale", 100))
    if "watch_pct" in inter and watch_scale != 100:
        inter["watch_pct"] = numeric(inter, "watch_pct", inter["_file"].iloc[0]) * (100.0 / watch_scale)
    if "learners" not in tables:
        tables["learners"] = inter.drop_duplicates("learner_id")[["learner_id", "_file", "_row"]]
    scale = spec.get("rating_scale")
    if "rating" in inter and not (isinstance(scale, list) and len(scale) == 2):
        raise ValidationError(
            str(mapping_file), "rating scale", "a rating column is mapped: give rating_scale: [min, max]"
        )
    files = [
        mapping_file,
        *sorted({Path(t["_file"].iloc[0]) for t in tables.values() if len(t)} - {mapping_file}),
    ]
    return SourceData(
        "generic",
        tables["learners"],
        tables["courses"],
        inter,
        tuple(float(v) for v in scale) if scale else None,
        files,
    )
