"""The canonical tables (``learners``, ``courses``, ``interactions``) and their validation errors.

Every source adapter maps its files onto these columns. Required columns must be present; optional
ones are kept only when the source has them (a stage that needs one says so and degrades when it is
absent). Columns outside the contract pass through unchanged. Raw tables also carry provenance
columns ``_file`` and ``_row`` (1-based data row, header excluded) so any error can name its origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

PROVENANCE = ("_file", "_row")
DIFFICULTY_LEVELS = ("beginner", "intermediate", "advanced")
MAX_TEXT_CHARS = 20_000  # longer text is truncated (a documented repair, counted in metadata)
MAX_DURATION_MIN = 60 * 24 * 365  # a course longer than a year of wall-clock time is absurd
LIST_SEPARATOR = "; "  # multi-valued text fields (software, theme, job, prerequisites)


class Kind(str, Enum):
    ID = "id"
    TEXT = "text"
    FLOAT = "float"
    BOOL = "bool"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


LEARNERS = TableSpec(
    "learners",
    key=("learner_id",),
    columns=(
        Column("learner_id", Kind.ID, required=True, doc="unique learner id (text)"),
        Column("job", Kind.TEXT, doc="job role or occupation"),
        Column("software", Kind.TEXT, doc="software skills, '; '-separated"),
    ),
)

COURSES = TableSpec(
    "courses",
    key=("course_id",),
    columns=(
        Column("course_id", Kind.ID, required=True, doc="unique course id (text)"),
        Column("title", Kind.TEXT, required=True, doc="course title"),
        Column("description", Kind.TEXT, doc="free-text description"),
        Column("difficulty", Kind.TEXT, allowed=DIFFICULTY_LEVELS, doc="beginner / intermediate / advanced"),
        Column("theme", Kind.TEXT, doc="subject or themes, '; '-separated"),
        Column("software", Kind.TEXT, doc="software taught, '; '-separated"),
        Column("job", Kind.TEXT, doc="target job roles, '; '-separated"),
        Column("duration_min", Kind.FLOAT, min=0, max=MAX_DURATION_MIN, doc="length in minutes"),
        Column("prerequisites", Kind.TEXT, doc="course ids, '; '-separated"),
    ),
)

INTERACTIONS = TableSpec(
    "interactions",
    key=("learner_id", "course_id"),
    columns=(
        Column("learner_id", Kind.ID, required=True, doc="a learner in learners"),
        Column("course_id", Kind.ID, required=True, doc="a course in courses"),
        Column("rating", Kind.FLOAT, doc="explicit rating on the source's declared scale"),
        Column("watch_pct", Kind.FLOAT, min=0, max=100, doc="share of the course watched, 0-100"),
        Column("grade", Kind.FLOAT, min=0, max=100, doc="assessment grade, 0-100"),
        Column("completed", Kind.BOOL, doc="whether the learner completed the course"),
        Column("ts", Kind.TIMESTAMP, doc="when the interaction happened (UTC)"),
        Column("clicks", Kind.FLOAT, min=0, doc="count of page views or clicks"),
    ),
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (LEARNERS, COURSES, INTERACTIONS)}


@dataclass
class ValidationError(ValueError):
    """Bad input, located: which file, column and row broke which rule."""

    file: str
    rule: str
    message: str
    column: str | None = None
    row: int | None = None
    value: object = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [self.file or "<input>"]
        if self.column is not None:
            where.append(f"column '{self.column}'")
        if self.row is not None:
            where.append(f"row {self.row}")
        shown = "" if self.value is None else f" (value: {_short(self.value)})"
        return f"{', '.join(where)}: {self.message}{shown} [rule: {self.rule}]"


@dataclass
class Repair:
    """A documented repair applied instead of failing (counted and shown in asset metadata)."""

    table: str
    rule: str
    count: int
    detail: str = ""


@dataclass
class CleanReport:
    rows_in: dict[str, int] = field(default_factory=dict)  # raw rows cleaned
    rows_out: dict[str, int] = field(default_factory=dict)  # of them, rows written
    repairs: list[Repair] = field(default_factory=list)
    grown: bool = False  # only the raw rows that appended ones touch were cleaned (cleaning.clean_tables)


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
