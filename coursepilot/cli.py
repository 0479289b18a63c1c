"""The ``coursepilot`` command line.

Commands that run the pipeline import the Dagster code location lazily, so the domain library and
the quick commands stay free of Dagster.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .home import HOME_ENV, ProjectHome
from .schema import ValidationError
from .sources import FORMATS, source_env
from .synthetic import SIZES, SyntheticSpec, write_dataset

console = Console(stderr=False)


def _add_source_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data source (default: the embedded synthetic generator)")
    env = source_env()  # COURSEPILOT_SOURCE_* and friends set the defaults
    group.add_argument(
        "--format",
        choices=list(FORMATS),
        default=env.get("format", "synthetic"),
        help="source format: " + "; ".join(f"{k}: {v}" for k, v in FORMATS.items()),
    )
    group.add_argument(
        "--data",
        metavar="PATH",
        default=env.get("path"),
        help="file or folder of the source (synthetic: a folder from `coursepilot generate`; "
        "empty: generate one under the project home)",
    )
    group.add_argument(
        "--mapping",
        metavar="FILE",
        default=env.get("mapping"),
        help="generic format: the YAML file mapping your columns onto the canonical tables",
    )
    group.add_argument(
        "--size",
        choices=list(SIZES),
        default=env.get("size", "S"),
        help="synthetic size preset when no --data is given: "
        + ", ".join(
            f"{k}={v.learners:,} learners/{v.courses:,} courses/{v.interactions:,} interactions"
            for k, v in SIZES.items()
        ),
    )
    group.add_argument(
        "--seed",
        type=int,
        default=int(env.get("seed", "0")),
        help="synthetic generator seed",
    )
    group.add_argument(
        "--strict",
        action="store_true",
        help="fail on duplicates, orphan interactions and over-long text instead of repairing them",
    )


def _add_home_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        metavar="DIR",
        default=None,
        help=f"project home holding everything coursepilot writes (default: ${HOME_ENV} or ./.coursepilot)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coursepilot",
        description=__doc__.splitlines()[0] + " Course and peer recommendation as a Dagster asset graph.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="materialize the whole asset graph and print a summary",
        description="Materialize every asset (with its checks) in-process against the project's "
        "Dagster instance, then print the tables, check results and where things live.",
    )
    _add_source_flags(run)
    _add_home_flag(run)
    run.add_argument(
        "--job",
        choices=["full_pipeline", "nightly_retrain"],
        default="full_pipeline",
        help="full_pipeline (default): every asset, tuning, comparison models and the evaluation report; "
        "nightly_retrain: the serving path with the last tuned settings (what the nightly schedule runs)",
    )
    run.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="lowest level of the assets' own log lines printed while the run goes (default INFO); "
        "every step's result is always shown",
    )

    ev = commands.add_parser(
        "evaluate",
        help="run the pipeline on a source and write the evaluation report",
        description="Materialize the whole graph on --data (same code as the evaluation_report asset) "
        "and copy report.json, report.md and the plots into --out.",
    )
    _add_source_flags(ev)
    ev.add_argument("--out", required=True, metavar="DIR", help="where to write the report files")
    ev.add_argument(
        "--home",
        metavar="DIR",
        default=None,
        help="project home for this evaluation (default: DIR/home, apart from your main project home)",
    )

    gen = commands.add_parser(
        "generate",
        help="write a synthetic dataset (Parquet) with ground-truth labels",
        description="Generate learners, courses and interactions from the latent model "
        "documented in docs/data.md (Synthetic data), plus truth_learners / truth_courses.",
    )
    gen.add_argument("--out", required=True, metavar="DIR", help="output folder (replaced atomically)")
    gen.add_argument("--size", choices=list(SIZES), default="S", help="size preset (default S)")
    gen.add_argument("--learners", type=int, help="override the preset's number of learners")
    gen.add_argument("--courses", type=int, help="override the preset's number of courses")
    gen.add_argument("--interactions", type=int, help="override the preset's number of interactions")
    gen.add_argument("--weeks", type=int, help="length of the interaction period in weeks (default 12)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same data")

    rec = commands.add_parser(
        "recommend",
        help="top-k courses for a learner (or a new learner's profile) from the registry",
        description="Load the registered recommender (no Dagster) and print top-k courses with reasons.",
    )
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--learner", metavar="ID", help="a known learner id")
    who.add_argument(
        "--profile", metavar="TEXT", help="a new learner: job, software, themes or a sentence of interests"
    )
    rec.add_argument("-k", type=int, default=10, help="how many courses (default 10)")
    rec.add_argument(
        "--model", metavar="URI", help="MLflow model URI (default: models:/coursepilot-recommender@champion)"
    )
    _add_home_flag(rec)

    promote = commands.add_parser(
        "promote",
        help="make a registered version the @champion (a manual rollback)",
        description="Point coursepilot-recommender@champion at an existing version.",
    )
    promote.add_argument("--version", required=True, help="the model version to serve")
    _add_home_flag(promote)

    peers = commands.add_parser(
        "peers",
        help="top-k peers to learn with, from the last pipeline run",
        description="Print a learner's recommended peers (from the warehouse's peer_recommendations) with "
        "reasons.",
    )
    peers.add_argument("--learner", metavar="ID", required=True, help="a known learner id")
    peers.add_argument("-k", type=int, default=10, help="how many peers (default 10, at most the run's k)")
    _add_home_flag(peers)

    ui = commands.add_parser(
        "ui",
        help="start the Dagster UI on 127.0.0.1",
        description="Start `dagster dev` on the project's instance and code location.",
    )
    _add_home_flag(ui)
    ui.add_argument("--port", type=int, default=3000, help="port of the Dagster webserver (default 3000)")
    return parser


def _dataset(args: argparse.Namespace):
    from resources import DatasetResource

    return DatasetResource(
        format=args.format,
        path=args.data,
        mapping=args.mapping,
        size=args.size,
        seed=args.seed,
        strict=args.strict,
    )


INTERRUPTED = 128 + signal.SIGINT  # the shell's exit status for Ctrl-C


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.run import failure_message, interrupted, print_summary, run_pipeline

    home = ProjectHome.resolve(args.home).ensure()
    dataset = _dataset(args)
    console.rule(f"coursepilot run: {dataset.describe()}")
    started = time.perf_counter()
    try:
        result = run_pipeline(home, dataset, console, args.log_level, args.job)
    except KeyboardInterrupt:
        # before the run started: Dagster turns an interrupt during the run into its failure
        console.print("[red bold]Interrupted[/] before the run started: nothing was changed.")
        return INTERRUPTED
    elapsed = time.perf_counter() - started
    if interrupted(result):
        console.print(
            f"[red bold]Run interrupted[/] after {elapsed:.1f} s: Dagster run {result.run_id} is marked "
            "failed (not retried). The project home is unlocked and the previous good tables were left "
            "untouched."
        )
        return INTERRUPTED
    if not result.success:
        console.print(f"[red bold]Run failed[/] after {elapsed:.1f} s: {failure_message(result)}")
        console.print("The previous good tables were left untouched.")
        return 1
    print_summary(console, home, result, dataset)
    console.print(f"[green bold]Materialized every asset[/] in {elapsed:.1f} s.")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from pipelines.run import failure_message, run_pipeline

    if args.format == "catalog":
        raise ValueError(
            "the catalog format has courses only: there are no interactions to rank, so nothing to evaluate"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    home = ProjectHome.resolve(args.home or out / "home").ensure()
    dataset = _dataset(args)
    console.rule(f"coursepilot evaluate: {dataset.describe()}")
    result = run_pipeline(home, dataset, console, "WARNING")
    if not result.success:
        console.print(f"[red bold]Evaluation failed[/]: {failure_message(result)}")
        return 1
    report = home.reports / result.run_id
    if not (report / "report.json").exists():
        raise ValueError("the run wrote no report: the source has no interactions to rank")
    for file in report.iterdir():
        shutil.copy2(file, out / file.name)
    console.print(f"[green bold]Report written[/] to {out} (report.md, report.json, plots)")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    base = SIZES[args.size]
    spec = SyntheticSpec(
        learners=args.learners or base.learners,
        courses=args.courses or base.courses,
        interactions=args.interactions or base.interactions,
        weeks=args.weeks or base.weeks,
        seed=args.seed,
    )
    stages = ["courses", "learners", "interactions", "outcomes", "writing"]
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("generating", total=len(stages))

        def step(stage: str) -> None:
            progress.update(task, description=f"generating: {stage}", completed=stages.index(stage))

        out = write_dataset(spec, args.out, step)
        progress.update(task, completed=len(stages), description="done")
    console.print(
        f"Wrote {spec.learners:,} learners, {spec.courses:,} courses, up to {spec.interactions:,} "
        f"interactions to {out}"
    )
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    import pandas as pd
    from mlflow.exceptions import MlflowException
    from rich.table import Table

    from .registry import load_recommender

    if args.k < 1:
        raise ValueError("-k must be at least 1")
    try:
        model = load_recommender(home=ProjectHome.resolve(args.home), uri=args.model)
    except MlflowException as err:
        raise ValueError(
            f"cannot load the recommender ({err.message.splitlines()[0]}); run `coursepilot run` first"
        ) from None
    query = pd.DataFrame({"learner_id": [args.learner or ""], "profile": [args.profile or ""], "k": [args.k]})
    try:
        result = model.predict(query)
    except KeyError as err:
        raise ValueError(err.args[0]) from None
    table = Table(
        title=f"Top {args.k} for " + (f"learner {args.learner}" if args.learner else "a new learner")
    )
    for col in ("rank", "course_id", "title", "score", "reason"):
        table.add_column(col)
    for row in result.itertuples():
        table.add_row(str(row.rank), row.course_id, row.title, f"{row.score:.3f}", row.reason)
    console.print(table)
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from .registry import MODEL_NAME, champion_version, promote
    from .tracking import Tracker

    client = Tracker(ProjectHome.resolve(args.home)).mlflow.MlflowClient()
    before = champion_version(client)
    try:
        promote(client, args.version)
    except MlflowException:
        raise ValueError(f"{MODEL_NAME} has no version {args.version}") from None
    console.print(f"{MODEL_NAME}@champion: version {before} -> {args.version}")
    return 0


def cmd_peers(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .warehouse import connect, table_exists

    home = ProjectHome.resolve(args.home)
    if not home.warehouse.exists():
        raise ValueError(f"no warehouse at {home.warehouse}; run `coursepilot run` first")
    with connect(home.warehouse, read_only=True) as con:
        if not table_exists(con, "peer_recommendations"):
            raise ValueError("no peer recommendations yet; run `coursepilot run` first")
        rows = con.execute(
            "SELECT rank, peer_id, score, reason FROM peer_recommendations WHERE learner_id = ? AND rank <= "
            "? ORDER BY rank",
            [args.learner, args.k],
        ).fetchall()
        if (
            not rows
            and not con.execute("SELECT 1 FROM learners WHERE learner_id = ?", [args.learner]).fetchone()
        ):
            raise ValueError(f"unknown learner {args.learner!r}")
    table = Table(title=f"Peers for learner {args.learner}")
    for col in ("rank", "peer", "score", "reason"):
        table.add_column(col)
    for rank, peer, score, reason in rows:
        table.add_row(str(rank), peer, f"{score:.3f}", reason)
    console.print(table if rows else f"learner {args.learner} has no peers yet (no training interactions)")
    return 0


def dagster_dev_command(port: int, workspace: Path) -> list[str]:
    """``dagster dev`` on the loopback address only: the UI can launch runs and has no authentication."""
    return [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)]


UI_STOP_GRACE_S = 90.0
"""How long ``coursepilot ui`` lets dagster dev stop its services before killing them (it gives each 60 s)."""


def _signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to the process group ``pgid``; False when no process of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def _stop_group(pgid: int, grace_s: float) -> None:
    """SIGTERM whatever is left of the group, then SIGKILL it when it is still there ``grace_s`` later."""
    deadline = time.monotonic() + grace_s
    if _signal_group(pgid, signal.SIGTERM):
        while _signal_group(pgid, 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_group(pgid, signal.SIGKILL)


def run_group(command: list[str], grace_s: float = UI_STOP_GRACE_S, **popen) -> int:
    """Run ``command`` as the leader of a session of its own and return its exit status (128 + n after signal
    n).

    A SIGTERM or SIGINT to this process goes to the whole group, a second one kills it, and so does the end of
    ``grace_s``; once the leader has exited, anything it left in the group is stopped too.
    """
    leader = subprocess.Popen(command, start_new_session=True, **popen)
    asked: list[float] = []

    def forward(signum: int, _frame) -> None:
        asked.append(time.monotonic())
        _signal_group(leader.pid, signum if len(asked) == 1 else signal.SIGKILL)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        while (status := leader.poll()) is None:
            if asked and time.monotonic() - asked[0] > grace_s:
                _signal_group(leader.pid, signal.SIGKILL)
            time.sleep(0.2)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _stop_group(leader.pid, grace_s)
    return 128 - status if status < 0 else status


def cmd_ui(args: argparse.Namespace) -> int:
    from pipelines.run import REPO_ROOT, prepare_dagster_home

    home = ProjectHome.resolve(args.home)
    dagster_home = prepare_dagster_home(home)
    # `dagster dev` warns that `dg dev` supersedes it; both serve the same UI, and dg needs another package.
    env = dict(
        os.environ,
        DAGSTER_HOME=str(dagster_home),
        PYTHONWARNINGS="ignore:Function `dev_command` is superseded",
        **{HOME_ENV: str(home.root)},
    )
    command = dagster_dev_command(args.port, REPO_ROOT / "workspace.yaml")
    console.print(f"Dagster UI on http://127.0.0.1:{args.port} (instance {dagster_home}); Ctrl-C stops it.")
    # started in the instance folder, so the template dagster.yaml in the repository is not mistaken for it
    return run_group(command, cwd=dagster_home, env=env)


QUIET_MLFLOW = {"MLFLOW_LOGGING_LEVEL": "WARNING", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
"""MLflow's INFO lines and download bars would interleave with the step progress; set either variable to
override."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name, value in QUIET_MLFLOW.items():  # before MLflow is imported: it reads them once
        os.environ.setdefault(name, value)
    handlers = {
        "run": cmd_run,
        "evaluate": cmd_evaluate,
        "generate": cmd_generate,
        "recommend": cmd_recommend,
        "peers": cmd_peers,
        "promote": cmd_promote,
        "ui": cmd_ui,
    }
    try:
        return handlers[args.command](args)
    except (ValidationError, ValueError, FileNotFoundError) as err:
        console.print(f"[red bold]error:[/] {err}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
