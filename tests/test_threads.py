"""The thread executor: independent steps overlap, dependencies and failures are kept, hooks run, an interrupt
stops the run after the steps under way, and the project's graph runs on it with the results of the
in-process executor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, job, op, success_hook

from coursepilot import warehouse
from coursepilot.home import ProjectHome
from pipelines.threads import EXCLUSIVE_TAG, execute_in_threads
from tests.test_operations import materialize_xs

REPO = Path(__file__).resolve().parents[1]


def _spans(instance: DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """Each step's (start, end) from the run's stored events."""
    starts, ends = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            ends[event.step_key] = record.timestamp
    return {key: (starts[key], ends[key]) for key in ends}


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _branches(fail: bool = False):
    """Two branches of one slow step each, joined by a last step; the second branch fails when ``fail``."""
    threads: dict[str, str] = {}
    hooked: list[str] = []

    @success_hook
    def record(context):
        hooked.append(context.op.name)

    @op
    def left() -> int:
        threads["left"] = threading.current_thread().name
        time.sleep(1.0)
        return 1

    @op
    def right() -> int:
        threads["right"] = threading.current_thread().name
        time.sleep(1.0)
        if fail:
            raise ValueError("right broke")
        return 2

    @op
    def joined(a: int, b: int) -> int:
        return a + b

    @job(hooks={record})
    def branches():
        joined(left(), right())

    return branches, threads, hooked


def test_independent_steps_overlap_on_threads_and_their_dependants_wait():
    branches, threads, hooked = _branches()
    with DagsterInstance.ephemeral() as instance:
        result = execute_in_threads(branches, instance, {}, None)
        spans = _spans(instance, result.run_id)
    assert result.success
    assert result.output_for_node("joined") == 3
    assert _overlap(spans["left"], spans["right"]) and threads["left"] != threads["right"]
    assert spans["joined"][0] >= max(spans["left"][1], spans["right"][1])
    assert sorted(hooked) == ["joined", "left", "right"]  # every step's hook, on the run's thread


def test_one_thread_runs_one_step_at_a_time():
    branches, _, _ = _branches()
    with DagsterInstance.ephemeral() as instance:
        result = execute_in_threads(branches, instance, {}, None, max_concurrent=1)
        spans = _spans(instance, result.run_id)
    assert result.success
    assert not any(_overlap(spans[a], spans[b]) for a in spans for b in spans if a < b)


def test_a_failing_step_skips_its_dependants_and_the_other_branch_finishes():
    branches, threads, _ = _branches(fail=True)
    with DagsterInstance.ephemeral() as instance:
        result = execute_in_threads(branches, instance, {}, None)
    assert not result.success
    failed = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failed] == ["right"]
    assert "right broke" in str(failed[0].step_failure_data.error.cause.message)
    assert {e.step_key for e in result.all_events if e.is_step_start} == {"left", "right"}  # joined never ran
    assert result.output_for_node("left") == 1


def test_the_step_with_the_longest_chain_behind_it_starts_first():
    @op
    def alone() -> None:
        time.sleep(0.2)

    @op
    def first() -> int:
        time.sleep(0.2)
        return 1

    @op
    def second(x: int) -> int:
        return x

    @op
    def third(x: int) -> None:
        pass

    @job
    def uneven():
        alone()
        third(second(first()))

    with DagsterInstance.ephemeral() as instance:
        result = execute_in_threads(uneven, instance, {}, None, max_concurrent=1)
        spans = _spans(instance, result.run_id)
    assert result.success
    assert spans["first"][1] <= spans["alone"][0]  # declared after ``alone``, but three steps wait on it
    assert spans["second"][1] <= spans["alone"][0]  # and the chain goes on while it is the longer


def test_steps_sharing_an_exclusive_value_never_overlap_and_leave_the_other_thread_free():
    """The encoder's two steps (``assets.ENCODES``) one at a time, a third step beside them."""

    @op(tags={EXCLUSIVE_TAG: "encoder"})
    def encode_a() -> None:
        time.sleep(0.6)

    @op(tags={EXCLUSIVE_TAG: "encoder"})
    def encode_b() -> None:
        time.sleep(0.6)

    @op
    def other() -> None:
        time.sleep(0.3)

    @job
    def encodes():
        encode_a()
        encode_b()
        other()

    with DagsterInstance.ephemeral() as instance:
        result = execute_in_threads(encodes, instance, {}, None)
        spans = _spans(instance, result.run_id)
    assert result.success
    assert not _overlap(spans["encode_a"], spans["encode_b"])
    first = min(("encode_a", "encode_b"), key=lambda k: spans[k][0])
    assert _overlap(spans[first], spans["other"])  # the second thread took the step that could run


def test_openmp_threads_wait_passively_unless_the_environment_says_otherwise():
    code = "import os, coursepilot; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    policies = [
        subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, cwd=REPO).stdout
        for e in (env, {**env, "OMP_WAIT_POLICY": "ACTIVE"})
    ]
    assert [p.strip() for p in policies] == ["PASSIVE", "ACTIVE"]


INTERRUPTED = """
import sys, time
from pathlib import Path
from dagster import DagsterInstance, job, op
from pipelines.run import interrupted
from pipelines.threads import execute_in_threads

@op
def slow() -> int:
    print("slow started", flush=True)
    time.sleep(3)
    print("slow finished", flush=True)
    return 1

@op
def after(x: int) -> None:
    print("after ran", flush=True)

@job
def chain():
    after(slow())

with DagsterInstance.ephemeral() as instance:
    result = execute_in_threads(chain, instance, {}, None)
print("interrupted" if interrupted(result) else "success" if result.success else "failure", flush=True)
"""


def test_an_interrupt_lets_the_step_under_way_finish_then_stops_the_run():
    run = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    deadline = time.monotonic() + 60
    line = ""
    while "slow started" not in line and time.monotonic() < deadline:
        line = run.stdout.readline()
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert out.split() == ["slow", "finished", "interrupted"], err[-3000:]


@pytest.mark.slow
def test_the_project_graph_on_threads_matches_one_step_at_a_time(tmp_path):
    """The code location with ``COURSEPILOT_EXECUTOR=threads``, through ``dagster asset materialize`` (the
    path of the UI and the daemon), against the in-process executor on the same data."""
    select = (
        "raw_learners,raw_courses,raw_interactions,learners,courses,interactions,split,learner_features,"
        "tfidf_course_vectors"
    )
    tables = {}
    for name in ("threads", "in_process"):
        home = ProjectHome.resolve(tmp_path / name)
        done = materialize_xs(home, name, select)
        assert done.returncode == 0, done.stderr[-3000:]
        assert ("threads in process" in done.stderr) == (name == "threads")
        with DagsterInstance.from_config(str(home.dagster)) as instance:
            run = instance.get_runs(limit=1)[0]
            spans = _spans(instance, run.run_id)
            assert run.status.value == "SUCCESS"
        overlapped = any(_overlap(spans[a], spans[b]) for a in spans for b in spans if a < b)
        assert overlapped == (name == "threads"), spans
        with warehouse.connect(home.warehouse, read_only=True) as con:
            tables[name] = {
                table: con.execute(f"SELECT * FROM {table} ORDER BY ALL").df().round(9)
                for table in ("split", "learner_features")
            }
    for table, frame in tables["threads"].items():
        assert frame.equals(tables["in_process"][table]), table


AUDITED_RUN = """
import json, sys, threading
from coursepilot.cli import main
from coursepilot.imports import IMPORTING

first = {}

class Audit:  # asked for every module not imported yet, before it is imported
    def find_spec(self, name, path=None, target=None):
        if threading.current_thread() is not threading.main_thread():
            first.setdefault(name, IMPORTING._is_owned())

sys.meta_path.insert(0, Audit())
code = main(sys.argv[2:])
json.dump(first, open(sys.argv[1], "w"))
sys.exit(code)
"""
LAZY_PACKAGES = {
    "sqlalchemy.orm", "git", "skops", "torch", "transformers", "sentence_transformers", "onnxruntime",
    "implicit", "usearch", "matplotlib", "PIL",
}  # fmt: skip


@pytest.mark.slow
def test_packages_first_imported_by_steps_on_threads_are_imported_under_the_lock(tmp_path):
    """Two steps first importing one package whose modules import each other can be handed a half-initialised
    module (the MLflow store's SQLAlchemy ORM failed a CI run so): every such package a step imports lazily
    is imported holding ``IMPORTING``."""
    audit = tmp_path / "imports.json"
    done = subprocess.run(
        [sys.executable, "-c", AUDITED_RUN, str(audit), "run", "--size", "XS", "--log-level", "ERROR"]
        + ["--home", str(tmp_path / "home")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    first = json.loads(audit.read_text())
    on_steps = {name: locked for name, locked in first.items() if name in LAZY_PACKAGES}
    assert {"git", "skops", "matplotlib"} <= on_steps.keys(), on_steps
    assert "sqlalchemy.orm" not in first  # imported by the executor before the steps' threads start
    assert all(on_steps.values()), on_steps
