"""One pipeline run per project home at a time: an exclusive lock held for the whole run.

The lock is ``flock`` on a file beside the warehouse, so it disappears with its process, even one
killed by SIGKILL: there are no stale locks to clean up. The file records who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path


class ProjectBusyError(RuntimeError):
    """Another run holds the project's run lock."""


@contextmanager
def run_lock(path: str | os.PathLike, what: str = "run"):
    """Hold the exclusive lock at ``path`` for the body; refuse at once (ProjectBusyError) when it is
    taken."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except json.JSONDecodeError:
                holder = {}
            since = (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"]))
                if "started" in holder
                else "unknown"
            )
            raise ProjectBusyError(
                f"another coursepilot {holder.get('what', 'run')} (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, started {since}) is writing {path.parent}; this {what} was "
                "refused before changing anything. Let that one finish, or stop it, then start again."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "what": what}
            )
        )
        handle.flush()
        yield
    finally:
        handle.close()  # closing the file releases the lock
