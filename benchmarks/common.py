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
    found = {
        "edX (Level)": ("catalog", DATASETS / "edx-catalog"),
        "MARS (Difficulty)": ("elearning", DATASETS / "mars-elearning"),
    }
    return {name: spec for name, spec in found.items() if spec[1].exists()}


def interaction_datasets() -> tuple[dict[str, tuple[str, Path]], dict[str, str]]:
    """Real datasets with interactions beside the checkout: ({name: (format, folder)}, {name: why it is
    missing})."""
    found, missing = {}, {}
    real = (("mars", "elearning", DATASETS / "mars-elearning"), ("oulad", "oulad", DATASETS / "oulad"))
    for name, fmt, folder in real:
        if folder.exists():
            found[name] = (fmt, folder)
        else:
            missing[name] = f"{folder} is absent"
    ibm = sorted(DATASETS.glob("ibm*"))
    rated = [folder for folder in ibm if (folder / "ratings.csv").exists()]
    if rated:
        found["ibm"] = ("ibm", rated[0])
    else:
        where = ", ".join(folder.name for folder in ibm) or "no ibm* folder"
        missing["ibm"] = f"no ratings.csv in {where}: course and profile tables only, no interactions to rank"
    return found, missing


def markdown_table(columns: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table of the cells as printed."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])
