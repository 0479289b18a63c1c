"""BLAS thread limits, one region at a time in the process.

threadpoolctl's limits are process-wide: a region sets the thread count and puts back, on exit, the count it
found on entry. Two threads entering and leaving such regions out of order leave each other's work on the
wrong count (an ALS fit on two BLAS threads, or EASE's solve on one, which may round differently) and can
leave the wrong count behind. Every region that sets a limit (ours, and scikit-learn's inside a fit) runs
under :data:`LOCK`: ALS's fit, EASE's solve and the peer group's clustering. Work that sets none runs beside
them: scoring, and BPR's SGD and implicit's item-item fit, which call no BLAS.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from threadpoolctl import threadpool_limits

LOCK = threading.RLock()


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """BLAS limited to ``n`` threads inside the block, no other limit region running meanwhile."""
    with LOCK, threadpool_limits(n, "blas"):
        yield
