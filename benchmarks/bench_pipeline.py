"""End-to-end: materialize the whole asset graph on synthetic data; wall, CPU and peak memory per stage.

Usage: python benchmarks/bench_pipeline.py [--sizes S M L] [--incremental [--nightly-only]] [--workdir DIR]
[--json FILE]

Each size runs in a fresh process (peak memory is its own) with a fresh project home. A stage is one
Dagster step; its wall time runs from the step's start event to its success event, CPU time is the
process's CPU time (all threads) over the same span, and its peak is the resident high-water mark
reset at the step's start (``/proc/self/clear_refs``); the run's peak is the largest of those. With the
``threads`` executor (``COURSEPILOT_EXECUTOR=threads``) steps overlap: a stage's CPU time and peak then
include the steps beside it, and the peak is reset only when no step is running. Orchestration overhead is
the run's total wall time minus the time some stage was running: loading definitions, the run and event
storage, launching the run, and the gaps between steps.

``--incremental`` then appends 1% new courses (new texts) and 1% new interactions (a week after the
last, half of them with the new courses) to the generated files and measures the ``nightly_retrain``
job on the same project home: what the nightly retrain on slowly growing data costs. ``--nightly-only``
skips the full run and adds 1% more to the home an earlier run left in ``--workdir``: the next night.
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

from common import console, print_table
from coursepilot.synthetic.growth import append_growth


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
        self.origin = time.perf_counter()

    def emit(self, record: logging.LogRecord) -> None:
        meta = record.__dict__.get("dagster_meta") or {}
        event, step = meta.get("dagster_event"), meta.get("step_key")
        kind = event.event_type_value if event is not None else None
        if kind == "STEP_START":
            print(f"{time.strftime('%H:%M:%S')} {step} started", flush=True)
            if not self.open:  # steps side by side share the process's peak, so it spans all of them
                _reset_peak()
            self.open[step] = (time.perf_counter(), time.process_time())
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and step in self.open:
            wall, cpu = self.open.pop(step)
            now = time.perf_counter()
            stage = self.stages[step] = {
                "start_s": wall - self.origin,
                "end_s": now - self.origin,
                "wall_s": now - wall,
                "cpu_s": time.process_time() - cpu,
                "peak_gb": _peak_kb() / 1024**2,
                "ok": kind == "STEP_SUCCESS",
            }
            print(
                f"{time.strftime('%H:%M:%S')} {step} {'done' if stage['ok'] else 'FAILED'}: wall "
                f"{stage['wall_s']:.1f} s, CPU {stage['cpu_s']:.1f} s, peak {stage['peak_gb']:.2f} GB",
                flush=True,
            )


def measure(size: str, workdir: str, queue, label: str, job_name: str) -> None:
    from dagster import DagsterInstance, LoggerDefinition

    from coursepilot.home import ProjectHome
    from pipelines.definitions import build_definitions
    from pipelines.run import execute_here, prepare_dagster_home
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
        job = defs.resolve_job_def(job_name)
        result = execute_here(job, instance, {**(job.run_config or {}), "loggers": {"clock": {}}})
    meta = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    embedded = (
        {k: meta["course_embeddings"][k].value for k in ("encoded", "cached")}
        if "course_embeddings" in meta
        else {}
    )
    queue.put(
        {
            "size": size,
            "run": label,
            "success": result.success,
            "stages": clock.stages,
            "embeddings": embedded,
            "wall_s": time.perf_counter() - started,
            "cpu_s": time.process_time() - cpu_started,
            "peak_gb": max([_peak_kb() / 1024**2] + [s["peak_gb"] for s in clock.stages.values()]),
        }
    )


def _busy_s(stages) -> float:
    """How long at least one of ``stages`` was running (their spans' union)."""
    busy, reached = 0.0, float("-inf")
    for start, end in sorted((s["start_s"], s["end_s"]) for s in stages):
        busy += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return busy


def report(run: dict) -> None:
    stages = run["stages"]
    rows = [
        [name, f"{s['wall_s']:.1f}", f"{s['cpu_s']:.1f}", f"{s['peak_gb']:.2f}", "" if s["ok"] else "FAILED"]
        for name, s in stages.items()
    ]
    overhead = run["wall_s"] - _busy_s(stages.values())
    rows.append(
        [
            "total",
            f"{run['wall_s']:.1f}",
            f"{run['cpu_s']:.1f}",
            f"{run['peak_gb']:.2f}",
            "" if run["success"] else "run FAILED",
        ]
    )
    rows.append(["orchestration overhead", f"{overhead:.1f} ({overhead / run['wall_s']:.1%})", "", "", ""])
    encoded = (
        f"; courses encoded {run['embeddings']['encoded']}, from cache {run['embeddings']['cached']}"
        if run["embeddings"]
        else ""
    )
    print_table(
        f"Size {run['size']}, {run['run']}: per stage (seconds, GB){encoded}",
        ["stage", "wall s", "CPU s", "peak GB", ""],
        rows,
    )


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
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=["XS", "S", "M", "L"],
        default=["S"],
        help="synthetic size presets to run, each in a fresh process (default S)",
    )
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="after each full run, add 1%% new courses and interactions and time the nightly_retrain job",
    )
    parser.add_argument(
        "--workdir", help="where the project homes go (default: a temporary folder, removed afterwards)"
    )
    parser.add_argument(
        "--nightly-only",
        action="store_true",
        help="with --incremental and --workdir: skip the full run and time only the nightly, on the home an "
        "earlier run left in --workdir (repeat it to measure nightly after nightly)",
    )
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file")
    args = parser.parse_args()
    if args.nightly_only and not (args.incremental and args.workdir):
        parser.error("--nightly-only needs --incremental and the --workdir of an earlier run")
    workdir = args.workdir or tempfile.mkdtemp(prefix="coursepilot-bench-")
    context = mp.get_context("spawn")
    queue, runs = context.Queue(), []
    try:
        for size in args.sizes:
            jobs = (("full run", "full_pipeline"), ("nightly +1%", "nightly_retrain"))
            for label, job_name in jobs[args.nightly_only : 2 if args.incremental else 1]:
                if job_name != "full_pipeline":
                    data = next((Path(workdir) / size / "data").iterdir())
                    console.print(f"added {append_growth(data)} (courses, interactions) to {data}")
                proc = context.Process(target=measure, args=(size, workdir, queue, label, job_name))
                proc.start()
                run = _wait(proc, queue)
                if run is None:
                    console.print(
                        f"size {size}, {label}: the run's process died (exit code {proc.exitcode}); out of "
                        "memory?"
                    )
                    break
                runs.append(run)
                report(run)
                if args.json:
                    args.json.write_text(json.dumps(runs, indent=2))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
