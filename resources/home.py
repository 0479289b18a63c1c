"""The project home and the DuckDB warehouse inside it."""

from __future__ import annotations

from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource

from coursepilot.home import ProjectHome


class ProjectHomeResource(ConfigurableResource):
    """Where coursepilot keeps everything it writes (warehouse, Dagster and MLflow stores, caches)."""

    root: str

    @property
    def home(self) -> ProjectHome:
        return ProjectHome.resolve(self.root).ensure()


def warehouse_resource(home: ProjectHome) -> DuckDBResource:
    """The DuckDB warehouse file of a project home."""
    home.ensure()
    return DuckDBResource(database=str(home.warehouse))
