"""Dagster resources: the project home, the DuckDB warehouse, the data source, the embedder, MLflow."""

from .dataset import DatasetResource
from .home import ProjectHomeResource, WarehouseResource, warehouse_resource
from .models import EmbedderResource, TrackingResource

__all__ = [
    "DatasetResource",
    "EmbedderResource",
    "ProjectHomeResource",
    "TrackingResource",
    "WarehouseResource",
    "warehouse_resource",
]
