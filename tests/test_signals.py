"""Stopping for real: SIGTERM or Ctrl-C stops `coursepilot ui` with every process under it, and an interrupted
`coursepilot run` leaves its Dagster run finished as failed and the project home unlocked."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterExecutionInterruptedError

from coursepilot.home import ProjectHome
from coursepilot.runlock import run_lock
from pipelines.run import InterruptWatch
from tests.servers import free_port, serving

COURSEPILOT = str(Path(sys.executable).parent / "coursepilot")


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process from /proc, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(fields[1]), fields[0], int(fields[19])


def process_tree(root: int) -> dict[int, int]:
    """Every live process under ``root`` (``root`` included): pid -> start time, so a reused pid is not
    mistaken."""
    stats = {int(p.name): _stat(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    tree, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if stats.get(pid):
            tree[pid] = stats[pid][2]
            frontier += [child for child, stat in stats.items() if stat and stat[0] == pid]
    return tree


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def still_running(tree: dict[int, int]) -> list[int]:
    """The processes of ``tree`` that still run (a zombie waiting for its parent counts as stopped)."""
    return [
        pid for pid, start in tree.items() if (stat := _stat(pid)) and stat[2] == start and stat[1] != "Z"
    ]


def wait_until_gone(tree: dict[int, int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := still_running(tree)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def group_is_gone(pgid: int, timeout: float) -> bool:
    """Whether no process of the group ``pgid`` is left within ``timeout`` (also those started after a
    snapshot)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def port_is_free(port: int) -> bool:
    """Whether a new server can listen on ``port`` (as servers do, past the closed connections' TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize(
    "target, signum",
    [("coursepilot ui", signal.SIGTERM), ("coursepilot ui", signal.SIGINT), ("dagster dev", signal.SIGINT)],
    ids=["SIGTERM-to-ui", "SIGINT-to-ui", "SIGINT-to-dagster-dev"],
)
def test_a_signal_stops_the_ui_and_every_process_under_it(tmp_path, target, signum):
    port = free_port()
    env = dict(os.environ, COURSEPILOT_SYNTHETIC_SIZE="XS", COURSEPILOT_HOME=str(tmp_path / "home"))
    log = tmp_path / "ui.log"
    with serving(
        [COURSEPILOT, "ui", "--port", str(port)],
        f"http://127.0.0.1:{port}/server_info",
        timeout=180,
        env=env,
        log=log,
    ) as ui:
        tree = process_tree(ui.pid)
        names = {pid: command_line(pid) for pid in tree}
        # ui, dagster dev, webserver, daemon
        assert len(tree) >= 4 and {"dagster_webserver", "dagster._daemon"} <= {
            module for line in names.values() for module in line.split()
        }, names
        dagster_dev = next(pid for pid, line in names.items() if "dagster dev" in line)
        started = time.monotonic()
        os.kill(next(pid for pid, line in names.items() if target in line), signum)
        assert ui.wait(timeout=120) == 0, log.read_text()[-3000:]
        assert not wait_until_gone(tree, timeout=10) and group_is_gone(dagster_dev, timeout=10), (
            log.read_text()[-3000:]
        )
        # dagster dev stopped its services, nothing waited for a SIGKILL
        assert time.monotonic() - started < 60
    assert port_is_free(port)


GROUP_THAT_IGNORES_SIGTERM = """
import sys
from coursepilot.cli import run_group
stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "signal.signal(signal.SIGINT, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)")
sys.exit(run_group([sys.executable, "-c", stubborn], grace_s=2))
"""


def test_a_group_that_ignores_the_signal_is_killed_after_the_grace(tmp_path):
    supervisor = subprocess.Popen(
        [sys.executable, "-c", GROUP_THAT_IGNORES_SIGTERM], stdout=subprocess.PIPE, text=True
    )
    assert supervisor.stdout.readline().strip() == "ready"
    tree = process_tree(supervisor.pid)
    assert len(tree) == 2
    os.kill(supervisor.pid, signal.SIGTERM)
    assert supervisor.wait(timeout=15) == 128 + signal.SIGKILL
    assert not wait_until_gone(tree, timeout=5)


STEP_THAT_LOSES_THE_INTERRUPT = """
import os, signal, sys, threading, time
from dagster import DagsterInstance, job, op
from pipelines.run import InterruptWatch, interrupted

@op
def a_query():
    threading.Timer(1, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        time.sleep(60)
    except BaseException as interrupt:
        # "wrapped": as DuckDB does mid-query, the interrupt causes its "Query interrupted" error
        if sys.argv[1] == "wrapped":
            raise RuntimeError("Query interrupted") from interrupt
        # "swallowed": as when it lands in a garbage-collector callback, whose exceptions Python ignores

@op
def b_independent():
    print("b ran", flush=True)

@job
def two_branches():
    a_query()
    b_independent()

with InterruptWatch() as watch:
    hooked = two_branches.with_hooks(watch.hooks()) if sys.argv[2] == "watched" else two_branches
    result = hooked.execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)
print("interrupted" if interrupted(result) else "success" if result.success else "step failure", flush=True)
"""


@pytest.mark.parametrize("lost", ["wrapped", "swallowed"])
@pytest.mark.parametrize("watched", ["watched", "unwatched"])
def test_an_interrupt_a_step_loses_still_stops_the_run_when_watched(lost, watched):
    done = subprocess.run(
        [sys.executable, "-c", STEP_THAT_LOSES_THE_INTERRUPT, lost, watched],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    unwatched = ["b", "ran", "step", "failure"] if lost == "wrapped" else ["b", "ran", "success"]
    assert done.stdout.split() == (["interrupted"] if watched == "watched" else unwatched), done.stderr[
        -3000:
    ]


class RaisesWhenCollected:
    def __init__(self, error: BaseException):
        self.error = error

    def __del__(self):
        raise self.error


def test_while_watching_an_interrupt_python_ignores_is_not_printed_but_other_errors_are():
    printed, previous = [], sys.unraisablehook
    sys.unraisablehook = lambda unraisable: printed.append(type(unraisable.exc_value))  # Python's printer
    try:
        with InterruptWatch():
            RaisesWhenCollected(DagsterExecutionInterruptedError())
            RaisesWhenCollected(KeyboardInterrupt())
            RaisesWhenCollected(ValueError("a real error"))
        RaisesWhenCollected(KeyboardInterrupt())
        assert printed == [ValueError, KeyboardInterrupt]  # the last one after the watch ended
    finally:
        sys.unraisablehook = previous


def _runs(home: ProjectHome):
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home.dagster)) as instance:
        return instance.get_runs()


@pytest.mark.slow
def test_ctrl_c_fails_the_dagster_run_and_releases_the_project_home(tmp_path):
    home = ProjectHome.resolve(tmp_path / "home")
    lock = Path(f"{home.warehouse}.run-lock")
    command = [COURSEPILOT, "run", "--size", "XS", "--home", str(home.root), "--log-level", "WARNING"]
    run = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
    )
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.2)  # until the run holds the project home
    assert run.poll() is None, run.communicate()[0][-3000:]
    time.sleep(3)  # into the first steps
    tree = process_tree(run.pid)
    run.send_signal(signal.SIGINT)
    out = run.communicate(timeout=120)[0]
    assert run.returncode == 128 + signal.SIGINT, out[-3000:]
    assert "interrupted" in out and "Traceback" not in out, out[-3000:]
    assert not wait_until_gone(tree, timeout=10)
    runs = _runs(home)
    assert [r.status.value for r in runs] == ["FAILURE"]
    assert runs[0].tags.get("dagster/will_retry") == "false"  # the daemon cannot re-run a CLI run: it says so
    with run_lock(lock):  # the next run can take the home
        pass
