"""Time and peak memory of the source stage: generate synthetic data, read it, write raw, clean.

Usage: python benchmarks/bench_source.py [--sizes S M L] [--workdir DIR]
Each size runs in a fresh process so its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from coursepilot import ingest
from coursepilot.sources import load_source
from coursepilot.synthetic import SIZES, write_dataset
from coursepilot.warehouse import connect


def measure(size: str, workdir: str, queue) -> None:
    folder, timings = Path(workdir) / size, {}
    start = time.perf_counter()
    write_dataset(SIZES[size], folder / "data")
    timings["generate"] = time.perf_counter() - start
    start = time.perf_counter()
    source = load_source("synthetic", folder / "data")
    timings["read"] = time.perf_counter() - start
    with connect(folder / "warehouse.duckdb") as con:
        start = time.perf_counter()
        ingest.write_raw(con, source)
        timings["write raw"] = time.perf_counter() - start
        del source
        start = time.perf_counter()
        report = ingest.clean(con)
        timings["validate + clean"] = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    queue.put((size, timings, peak_gb, report.rows_out["interactions"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=list(SIZES),
        default=["S", "M"],
        help="size presets to run (default S M)",
    )
    parser.add_argument(
        "--workdir", help="where to write data and warehouses (default: a temporary folder, removed after)"
    )
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="coursepilot-bench-")
    table = Table(title="Source stage (seconds; peak resident memory)")
    for col in (
        "size",
        "interactions",
        "generate",
        "read",
        "write raw",
        "validate + clean",
        "total",
        "peak GB",
    ):
        table.add_column(col, justify="right")
    queue = mp.get_context("spawn").Queue()
    try:
        for size in args.sizes:
            proc = mp.get_context("spawn").Process(target=measure, args=(size, workdir, queue))
            proc.start()
            size, timings, peak, rows = queue.get()
            proc.join()
            table.add_row(
                size,
                f"{rows:,}",
                *(f"{timings[k]:.1f}" for k in ("generate", "read", "write raw", "validate + clean")),
                f"{sum(timings.values()):.1f}",
                f"{peak:.2f}",
            )
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
