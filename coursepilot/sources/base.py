"""What every source adapter returns, and careful file readers that fail with located errors."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..schema import ValidationError

Frame = pd.DataFrame | pa.Table


@dataclass
class SourceData:
    """Canonical-named raw tables of one source, each with ``_file`` and ``_row`` provenance.

    ``truth`` holds ground-truth tables when the source has them (synthetic data: learner pace,
    course intensity). ``rating_scale`` is the (min, max) the source declares for ``rating``.
    """

    format: str
    learners: Frame
    courses: Frame
    interactions: Frame
    rating_scale: tuple[float, float] | None
    files: list[Path]
    truth: dict[str, Frame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    explicit_ratings: bool = (
        True  # False where "rating" only encodes enrolment states (IBM: 2 audited, 3 completed)
    )

    def tables(self) -> dict[str, Frame]:
        return {"learners": self.learners, "courses": self.courses, "interactions": self.interactions}

    def fingerprint(self) -> str:
        return fingerprint(self.files)


def fingerprint(files: Iterable[Path]) -> str:
    """SHA-256 over the names and bytes of the source files (content, not modification time)."""
    digest = hashlib.sha256()
    for path in sorted(Path(f) for f in files):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def with_provenance(frame: pd.DataFrame, file: Path | str, rows: pd.Series | None = None) -> pd.DataFrame:
    """Attach ``_file`` and ``_row`` (1-based data row of the source file) to a frame."""
    frame = frame.copy()
    frame["_file"] = str(file)
    frame["_row"] = (frame.index.to_numpy() + 1) if rows is None else rows.to_numpy()
    return frame


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ValidationError(str(path), "file exists", f"{what} not found")
    return path


def _line_of_offset(path: Path, offset: int) -> int:
    with open(path, "rb") as handle:
        return handle.read(offset).count(b"\n") + 1


def read_csv(
    path: Path,
    required: Iterable[str] = (),
    dtype: dict | type | None = str,
    ids: Iterable[str] = (),
    **kwargs,
) -> pd.DataFrame:
    """Read a UTF-8 CSV file (BOM allowed) or fail with an error naming the file and the problem.

    Checks: the file exists and is not empty, it decodes as UTF-8, it has data rows, the delimiter
    is a comma, and every ``required`` column is present. The index is the 0-based data row. A field
    pandas reads as missing ("NA", "null", "NaN", ...) is missing, except in the ``ids`` columns, where
    only an empty field is: a learner called "NA" keeps their id.
    """
    path = Path(path)
    require_file(path, "file")
    if path.stat().st_size == 0:
        raise ValidationError(str(path), "non-empty file", "the file is empty")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = handle.readline()
        frame = pd.read_csv(path, dtype=dtype, encoding="utf-8-sig", keep_default_na=True, **kwargs)
    except UnicodeDecodeError as err:
        line = _line_of_offset(path, err.start)
        raise ValidationError(
            str(path), "encoding", f"bytes at line {line} are not valid UTF-8; save the file as UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        raise ValidationError(str(path), "non-empty file", "the file has no header or data") from None
    except pd.errors.ParserError as err:
        raise ValidationError(str(path), "csv syntax", f"cannot parse the file: {err}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    required = list(required)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        if len(frame.columns) == 1:
            for sep in (";", "\t", "|"):
                if sep in header:
                    raise ValidationError(
                        str(path),
                        "delimiter",
                        f"the file looks {sep!r}-delimited; coursepilot reads comma-separated files",
                        missing[0],
                    )
        raise ValidationError(
            str(path),
            "required column",
            f"missing column '{missing[0]}' (found: {', '.join(frame.columns)})",
            missing[0],
        )
    if frame.empty:
        raise ValidationError(str(path), "non-empty file", "the file has a header but no data rows")
    ids = [c for c in ids if c in frame.columns]
    if ids:
        text = pd.read_csv(
            path,
            dtype=str,
            encoding="utf-8-sig",
            usecols=lambda c: str(c).strip() in ids,
            keep_default_na=False,
            na_values=[""],
            **kwargs,
        )
        frame[ids] = text.rename(columns=lambda c: str(c).strip())[ids].to_numpy()
    return frame


def read_parquet(path: Path, required: Iterable[str] = ()) -> pa.Table:
    """Read a Parquet file or fail with an error naming the file (truncated or not Parquet)."""
    path = Path(path)
    require_file(path, "file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as err:
        raise ValidationError(str(path), "parquet", f"not a readable Parquet file ({err})") from None
    for col in required:
        if col not in table.column_names:
            raise ValidationError(
                str(path),
                "required column",
                f"missing column '{col}' (found: {', '.join(table.column_names)})",
                col,
            )
    if table.num_rows == 0:
        raise ValidationError(str(path), "non-empty file", "the file has no rows")
    return table


def read_table(path: Path, required: Iterable[str] = (), ids: Iterable[str] = ()) -> pd.DataFrame:
    """A CSV or Parquet file (by extension) as a pandas frame with ids left as text (``ids``: the id columns
    of a CSV, where only an empty field is missing)."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return read_parquet(path, required).to_pandas()
    return read_csv(path, required, ids=ids)


def arrow_with_provenance(table: pa.Table, file: Path) -> pa.Table:
    """Attach ``_file`` and ``_row`` to an arrow table without copying its columns."""
    n = table.num_rows
    files = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([str(file)]))
    return table.append_column("_file", files).append_column(
        "_row", pa.array(np.arange(1, n + 1, dtype=np.int64))
    )


def split_list(value: object) -> list[str]:
    """Parse a list-like text cell: ``['a', 'b']``, ``a; b``, ``a, b`` or ``a|b`` -> ``['a', 'b']``."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        items = next(csv.reader([text[1:-1]], skipinitialspace=True, quotechar="'"), [])
    else:
        for sep in (";", "|", ","):
            if sep in text:
                items = text.split(sep)
                break
        else:
            items = [text]
    return [i.strip().strip("'\"") for i in items if i.strip().strip("'\"")]


def numeric(frame: pd.DataFrame, column: str, file: Path | str) -> pd.Series:
    """A column as numbers; the first non-numeric cell is an error naming its row."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise ValidationError(str(file), "type", "not a number", column, row + 1, frame[column].iloc[row])
    return values
