"""Dagster resources: the project home, the DuckDB warehouse and the data source."""

from .dataset import DatasetResource
from .home import ProjectHomeResource, WarehouseResource, warehouse_resource

__all__ = ["DatasetResource", "ProjectHomeResource", "WarehouseResource", "warehouse_resource"]
