"""Two runs at once on one project home: the second is refused with the reason; nothing is corrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coursepilot import warehouse
from coursepilot.home import ProjectHome
from coursepilot.runlock import ProjectBusyError, run_lock

HOLD = (
    "import sys, time; from coursepilot.runlock import run_lock\nwith run_lock(sys.argv[1]):\n    "
    "print('held', flush=True); time.sleep(600)"
)


def test_a_held_lock_refuses_a_second_holder_with_who_holds_it(tmp_path):
    lock = tmp_path / "warehouse.duckdb.run-lock"
    with run_lock(lock, "run"):
        with pytest.raises(
            ProjectBusyError, match=rf"another coursepilot run \(pid {os.getpid()} on .*this run was refused"
        ):
            with run_lock(lock):
                pass
    with run_lock(lock):  # released on exit
        pass


def test_a_lock_dies_with_its_process_even_on_sigkill(tmp_path):
    lock = tmp_path / "run-lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ProjectBusyError, match=f"pid {holder.pid}"):
            with run_lock(lock):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    with run_lock(lock):
        pass


@pytest.mark.slow
def test_two_cli_runs_at_once_one_runs_the_other_is_refused(tmp_path):
    home = ProjectHome.resolve(tmp_path / "home")
    command = [
        str(Path(sys.executable).parent / "coursepilot"),
        "run",
        "--size",
        "XS",
        "--home",
        str(home.root),
        "--log-level",
        "WARNING",
    ]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock = Path(f"{home.warehouse}.run-lock")
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.2)  # until the first run holds the lock
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    out = first.communicate(timeout=900)[0]
    assert first.returncode == 0, out[-3000:]
    assert second.returncode == 1
    refusal = " ".join((second.stdout + second.stderr).split())
    assert "another coursepilot Dagster run" in refusal and "refused before changing anything" in refusal
    with warehouse.connect(home.warehouse, read_only=True) as con:
        assert (
            warehouse.row_count(con, "interactions") > 0
            and warehouse.row_count(con, "peer_recommendations") > 0
        )
