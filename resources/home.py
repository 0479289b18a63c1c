"""The project home, its model store and the DuckDB warehouse inside it."""

from __future__ import annotations

from contextlib import contextmanager

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from coursepilot import warehouse
from coursepilot.home import ProjectHome
from coursepilot.models.store import ModelStore
from coursepilot.runlock import run_lock


class ProjectHomeResource(ConfigurableResource):
    """Where coursepilot keeps everything it writes (warehouse, Dagster and MLflow stores, caches)."""

    root: str
    _home: ProjectHome | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Create the home's folders as the execution starts (once per resource: the nested homes of the
        tracking and embedder resources are set up too), rather than on every use."""
        self._ensure()

    @property
    def home(self) -> ProjectHome:
        """The resolved home; outside an execution (tests, the CLI) its folders are created on first use."""
        return self._home or self._ensure()

    def _ensure(self) -> ProjectHome:
        self._home = ProjectHome.resolve(self.root).ensure()
        return self._home

    @property
    def models(self) -> ModelStore:
        """The typed model store under ``<home>/models`` (entries in ``coursepilot.stored``)."""
        return ModelStore(self.home)


class WarehouseResource(ConfigurableResource):
    """The DuckDB warehouse file, locked for the run that uses it (``coursepilot.runlock``).

    Not ``dagster_duckdb.DuckDBResource``: its connection is not closed when the step raises, so
    a failed step would keep the file locked for the rest of the process.
    """

    database: str = Field(description="path of the DuckDB file")
    lock_wait_s: float = Field(default=30.0, description="how long to wait for another process's write lock")

    @contextmanager
    def yield_for_execution(self, context):
        """Hold the project's run lock while a run uses the warehouse: a second run is refused, not
        interleaved."""
        run = getattr(getattr(context, "run", None), "run_id", None)
        with run_lock(f"{self.database}.run-lock", f"Dagster run {run}" if run else "run"):
            yield self

    @contextmanager
    def get_connection(self):
        """A connection that may write. Steps of a run on threads share the process's database (DuckDB refuses
        a read-only connection beside a writing one in the same process), and the run lock keeps other
        runs out."""
        with warehouse.connect(self.database, lock_wait_s=self.lock_wait_s) as con:
            yield con


def warehouse_resource(home: ProjectHome) -> WarehouseResource:
    """The DuckDB warehouse of a project home (the file and its folder are created on first use)."""
    return WarehouseResource(database=str(home.warehouse))
