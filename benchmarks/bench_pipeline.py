"""End-to-end: materialize the whole asset graph on synthetic data; wall, CPU and peak memory per stage.

Usage: python benchmarks/bench_pipeline.py [--sizes S M L] [--workdir DIR] [--json FILE]

Each size runs in a fresh process (peak memory is its own) with a fresh project home. A stage is one
Dagster step; its wall time runs from the step's start event to its success event, CPU time is the
process's CPU time (all threads) over the same span, and its peak is the resident high-water mark
reset at the step's start (``/proc/self/clear_refs``); the run's peak is the largest of those. Orchestration overhead is the run's total wall
time minus the stages' own wall time: loading definitions, the run and event storage, launching the
run, and the gaps between steps.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from pathlib import Path
from queue import Empty

from common import print_table


def _peak_kb() -> int:
    """The resident-memory high-water mark of this process since the last reset, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


class StageClock(logging.Handler):
    """Records wall, CPU and peak memory of each step from the run's STEP_START / STEP_SUCCESS events."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.open: dict[str, tuple[float, float]] = {}
        self.stages: dict[str, dict] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = record.__dict__.get("dagster_meta") or {}
        event, step = meta.get("dagster_event"), meta.get("step_key")
        kind = event.event_type_value if event is not None else None
        if kind == "STEP_START":
            print(f"{time.strftime('%H:%M:%S')} {step}", flush=True)
            _reset_peak()
            self.open[step] = (time.perf_counter(), time.process_time())
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and step in self.open:
            wall, cpu = self.open.pop(step)
            self.stages[step] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                                 "peak_gb": _peak_kb() / 1024**2, "ok": kind == "STEP_SUCCESS"}


def measure(size: str, workdir: str, queue) -> None:
    from dagster import DagsterInstance, LoggerDefinition

    from coursepilot.home import ProjectHome
    from pipelines.definitions import FULL_JOB, build_definitions
    from pipelines.run import prepare_dagster_home
    from resources import DatasetResource

    started, cpu_started = time.perf_counter(), time.process_time()
    home = ProjectHome.resolve(Path(workdir) / size).ensure()
    prepare_dagster_home(home)
    clock = StageClock()

    def make(_context) -> logging.Logger:
        log = logging.Logger("coursepilot.bench", level=logging.DEBUG)
        log.addHandler(clock)
        return log

    defs = build_definitions(home, DatasetResource(size=size), loggers={"clock": LoggerDefinition(make)})
    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def(FULL_JOB).execute_in_process(
            instance=instance, raise_on_error=False, run_config={"loggers": {"clock": {}}})
    queue.put({"size": size, "success": result.success, "stages": clock.stages,
               "wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu_started,
               "peak_gb": max([_peak_kb() / 1024**2] + [s["peak_gb"] for s in clock.stages.values()])})


def report(run: dict) -> None:
    stages = run["stages"]
    rows = [[name, f"{s['wall_s']:.1f}", f"{s['cpu_s']:.1f}", f"{s['peak_gb']:.2f}", "" if s["ok"] else "FAILED"]
            for name, s in stages.items()]
    own = sum(s["wall_s"] for s in stages.values())
    overhead = run["wall_s"] - own
    rows.append(["total", f"{run['wall_s']:.1f}", f"{run['cpu_s']:.1f}", f"{run['peak_gb']:.2f}",
                 "" if run["success"] else "run FAILED"])
    rows.append(["orchestration overhead", f"{overhead:.1f} ({overhead / run['wall_s']:.1%})", "", "", ""])
    print_table(f"Size {run['size']}: per stage (seconds, GB)", ["stage", "wall s", "CPU s", "peak GB", ""], rows)


def _wait(proc, queue) -> dict | None:
    """The measurement ``proc`` puts on ``queue``, or None when the process dies first."""
    while True:
        try:
            return queue.get(timeout=5)
        except Empty:
            if not proc.is_alive():
                return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=["XS", "S", "M", "L"], default=["S"], help="synthetic size presets to run, each in a fresh process (default S)")
    parser.add_argument("--workdir", help="where the project homes go (default: a temporary folder, removed afterwards)")
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="coursepilot-bench-")
    context = mp.get_context("spawn")
    queue, runs = context.Queue(), []
    try:
        for size in args.sizes:
            proc = context.Process(target=measure, args=(size, workdir, queue))
            proc.start()
            run = _wait(proc, queue)
            if run is None:
                print(f"size {size}: the run's process died (exit code {proc.exitcode}); out of memory?")
                continue
            runs.append(run)
            report(run)
            if args.json:
                args.json.write_text(json.dumps(runs, indent=2))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
