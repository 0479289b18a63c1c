"""The project home: the one directory that holds everything coursepilot writes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "COURSEPILOT_HOME"
DEFAULT_HOME = ".coursepilot"


@dataclass(frozen=True)
class ProjectHome:
    """Paths under the project home (default ``./.coursepilot``, env ``COURSEPILOT_HOME``)."""

    root: Path

    @classmethod
    def resolve(cls, root: str | os.PathLike | None = None) -> "ProjectHome":
        """The home given, else ``$COURSEPILOT_HOME``, else ``./.coursepilot``, as an absolute path."""
        chosen = root or os.environ.get(HOME_ENV) or DEFAULT_HOME
        return cls(Path(chosen).expanduser().resolve())

    @property
    def dagster(self) -> Path:
        return self.root / "dagster"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def data(self) -> Path:
        """Where generated synthetic datasets are kept."""
        return self.root / "data"

    def ensure(self) -> "ProjectHome":
        """Create the home and its sub-directories; return self."""
        for path in (self.root, self.dagster, self.embeddings, self.reports, self.data):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def contains(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` lies inside the home (used before loading anything executable)."""
        return Path(path).resolve().is_relative_to(self.root)
