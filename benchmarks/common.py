"""Helpers shared by the benchmark scripts: real datasets beside the checkout, rich tables."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
console = Console(width=140)


def best_of(repeats: int, fn) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def print_table(title: str, columns: list[str], rows: list[list]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="right" if col != columns[0] else "left")
    for row in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)


def labelled_catalogues() -> dict[str, tuple[str, Path]]:
    """The real catalogues with difficulty labels that are present beside the checkout."""
    found = {"edX (Level)": ("catalog", DATASETS / "edx-catalog"), "MARS (Difficulty)": ("elearning", DATASETS / "mars-elearning")}
    return {name: spec for name, spec in found.items() if spec[1].exists()}
