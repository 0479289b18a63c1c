"""A process killed with SIGKILL in the middle of writing never leaves a half-written table or cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from coursepilot.embeddings import DIM, EmbeddingCache
from coursepilot.warehouse import connect

WRITER = """
import sys, numpy as np, pandas as pd
from coursepilot.warehouse import connect, replace_tables
n = 0
with connect(sys.argv[1]) as con:
    while True:
        n += 1
        rows = 300_000 + 1000 * (n % 7)
        frame = pd.DataFrame({"k": np.arange(rows), "v": np.full(rows, n)})
        replace_tables(con, {"a": frame, "b": frame})
        print(n, flush=True)
"""

CACHE_WRITER = """
import sys, numpy as np
from coursepilot.embeddings import EmbeddingCache
cache = EmbeddingCache(sys.argv[1])
for n in range(10_000):
    cache.put({f"key-{n}-{i}": np.full(384, n, dtype=np.float32) for i in range(200)})
    print(n, flush=True)
"""


def run_and_kill(script: str, target, after_lines: int) -> None:
    child = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    for _ in range(after_lines):
        assert child.stdout.readline(), "the writer stopped early"
    time.sleep(np.random.default_rng().uniform(0.01, 0.3))  # somewhere inside the next write
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)


@pytest.mark.slow
def test_killed_warehouse_writer_leaves_whole_tables(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    for attempt in range(3):
        run_and_kill(WRITER, path, after_lines=2 + attempt)
        with connect(path, read_only=True) as con:
            a = con.execute("SELECT count(*), min(v), max(v) FROM a").fetchone()
            b = con.execute("SELECT count(*), min(v), max(v) FROM b").fetchone()
        assert a == b  # both tables come from the same committed transaction
        assert a[1] == a[2] and a[0] == 300_000 + 1000 * (a[1] % 7)  # one whole write, not a mix


@pytest.mark.slow
def test_killed_cache_writer_leaves_a_readable_cache(tmp_path):
    run_and_kill(CACHE_WRITER, tmp_path, after_lines=3)
    cache = EmbeddingCache(tmp_path)
    n = len(cache)
    assert n >= 3 * 200 and n % 200 == 0  # whole batches only
    vectors = cache.get([f"key-0-{i}" for i in range(200)])
    assert len(vectors) == 200 and all(v.shape == (DIM,) and v[0] == 0 for v in vectors.values())
    # the next write clears a killed writer's temp file
    cache.put({"one-more": np.zeros(DIM, dtype=np.float32)})
    assert [p.name for p in tmp_path.iterdir()] == ["cache.parquet"]
