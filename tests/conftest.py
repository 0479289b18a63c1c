"""Shared fixtures: the real datasets beside the checkout, small synthetic data, warehouses, a fitted
fusion."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from coursepilot.evaluation.protocol import held_out
from coursepilot.models.base import load_train_data
from coursepilot.synthetic import SIZES, write_dataset
from tests.recommender_data import SCALE, build_warehouse, small_fusion

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


def dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.exists():
        pytest.skip(f"real dataset {name} not found at {path} (CI has ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def xs_folder(tmp_path_factory) -> Path:
    """The XS synthetic dataset written once per test session."""
    return write_dataset(SIZES["XS"], tmp_path_factory.mktemp("synthetic") / "xs")


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory):
    """The recommender tests' synthetic warehouse (tests.recommender_data), built once per session."""
    connection = build_warehouse(tmp_path_factory.mktemp("rec") / "data")
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def data(warehouse):
    return load_train_data(warehouse, SCALE)


@pytest.fixture(scope="session")
def test_sets(warehouse, data):
    return held_out(warehouse, data, "test", SCALE)


@pytest.fixture(scope="session")
def fusion(data):
    return small_fusion().fit(data)
