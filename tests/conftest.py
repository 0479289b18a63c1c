"""Shared fixtures: the real datasets beside the checkout, small synthetic data, a warehouse."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from coursepilot.synthetic import SIZES, write_dataset

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
