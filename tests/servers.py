"""Helpers for tests that start a real server on 127.0.0.1 and stop it afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(command: list[str], url: str, timeout: float = 120, **popen) -> Iterator[subprocess.Popen]:
    """Start ``command`` in its own process group, wait until ``url`` answers, stop the group on exit."""
    log = popen.pop("log", None)
    out = open(log, "w") if log else subprocess.DEVNULL
    server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **popen)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert server.poll() is None, f"{command[:4]} exited with {server.returncode}" + (
                    f"; log: {log}" if log else ""
                )
                assert time.monotonic() < deadline, f"{url} did not answer in {timeout:.0f} s"
                time.sleep(0.5)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        if log:
            out.close()


def get_json(url: str, body: dict | None = None, timeout: float = 30) -> dict:
    """GET ``url`` (or POST ``body`` as JSON) and decode the JSON reply."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.load(reply)
