"""Project each pipeline stage's wall time and peak memory past the measured sizes.

Usage: python benchmarks/project_scale.py RUNS.json [RUNS.json ...] [--learners N [N ...]] [--memory-gb G]

Reads the ``--json`` files of ``bench_pipeline.py`` (the full runs; nightly runs are skipped) and, for
each stage, fits time and memory as power laws of the learner count, ``y = c * n^b``, through the two
largest sizes measured: the local slope, because the bounded work (samples capped at a fixed number of
learners, the fixed course catalogue of a size) bends the curve between the small sizes. Interactions
grow at 20 per learner in every synthetic preset, so the learner count stands for both. The exponents and
the projections are printed per stage, with the first stage whose projected peak passes ``--memory-gb``.
A projection holds only while the stage keeps doing the same kind of work: a sample cap that starts to
bind, or an index that replaces an exact search, changes the exponent.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from common import console, print_table
from coursepilot.synthetic.generator import SIZES


def power_law(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(c, b) of ``y = c * n^b`` through the two largest ``(n, y)`` points (y floored at 0.01)."""
    (n1, y1), (n2, y2) = sorted(points)[-2:]
    y1, y2 = max(y1, 0.01), max(y2, 0.01)
    b = math.log(y2 / y1) / math.log(n2 / n1)
    return y2 / n2**b, b


def full_runs(files: list[Path]) -> dict[int, dict]:
    """{learners: run} of the full runs in ``files`` (a later run of a size replaces an earlier one)."""
    runs = {}
    for path in files:
        for run in json.loads(path.read_text()):
            if run["run"] == "full run" and run["success"]:
                runs[SIZES[run["size"]].learners] = run
    return runs


def projections(runs: dict[int, dict], targets: list[int], share: float = 0.01) -> list[dict]:
    """Per stage measured in every run and taking at least ``share`` of the largest run's stage time: the
    time and memory exponents and the projected values. Memory grows above the process's floor (its
    smallest stage peak: the interpreter, Dagster and the libraries), which is added back."""
    sizes = sorted(runs)
    common = set.intersection(*(set(runs[n]["stages"]) for n in sizes))
    largest = runs[sizes[-1]]["stages"]
    total = sum(s["wall_s"] for s in largest.values())
    floor = {n: min(s["peak_gb"] for s in runs[n]["stages"].values()) for n in sizes}
    top = floor[sizes[-1]]
    out = []
    for stage in sorted(common, key=lambda s: -largest[s]["wall_s"]):
        if largest[stage]["wall_s"] < share * total:
            continue
        wall = power_law([(n, runs[n]["stages"][stage]["wall_s"]) for n in sizes])
        peak = power_law([(n, runs[n]["stages"][stage]["peak_gb"] - floor[n]) for n in sizes])
        out.append(
            {
                "stage": stage,
                "measured": [runs[n]["stages"][stage]["wall_s"] for n in sizes],
                "wall_exponent": wall[1],
                "peak_exponent": peak[1],
                "wall_s": [wall[0] * t ** wall[1] for t in targets],
                "peak_gb": [top + peak[0] * t ** peak[1] for t in targets],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs", nargs="+", type=Path, help="bench_pipeline.py --json files (two sizes at least)"
    )
    parser.add_argument(
        "--learners",
        nargs="+",
        type=int,
        default=[10_000_000, 100_000_000],
        help="learner counts to project to (default 10M and 100M)",
    )
    parser.add_argument(
        "--memory-gb", type=float, default=24.0, help="one machine's memory, to name the first stage past it"
    )
    args = parser.parse_args()
    runs = full_runs(args.runs)
    if len(runs) < 2:
        parser.error(f"need full runs of two sizes at least; found {sorted(runs) or 'none'}")
    sizes, targets = sorted(runs), args.learners
    rows = projections(runs, targets)
    label = [f"{n:,}" for n in targets]
    print_table(
        f"Per stage: wall s measured at {', '.join(f'{n:,}' for n in sizes)} learners; exponents b of "
        "c * n^b through the two largest; projected wall min and peak GB",
        [
            "stage",
            *(f"s @ {n:,}" for n in sizes),
            "b time",
            "b memory",
            *(f"min @ {x}" for x in label),
            *(f"GB @ {x}" for x in label),
        ],
        [
            [
                r["stage"],
                *(f"{v:.1f}" for v in r["measured"]),
                f"{r['wall_exponent']:.2f}",
                f"{r['peak_exponent']:.2f}",
                *(f"{v / 60:,.1f}" for v in r["wall_s"]),
                *(f"{v:,.1f}" for v in r["peak_gb"]),
            ]
            for r in rows
        ],
    )
    for i, n in enumerate(targets):
        total = sum(r["wall_s"][i] for r in rows) / 3600  # the stages under 1% are left out
        over = [r for r in rows if r["peak_gb"][i] > args.memory_gb]
        first = max(over, key=lambda r: r["peak_gb"][i]) if over else None
        console.print(
            f"{n:,} learners: {total:,.1f} h of stage time in sequence; "
            + (
                f"{len(over)} stage(s) past {args.memory_gb:g} GB, the largest {first['stage']} "
                f"({first['peak_gb'][i]:,.1f} GB)"
                if first
                else f"every stage within {args.memory_gb:g} GB"
            )
        )


if __name__ == "__main__":
    main()
