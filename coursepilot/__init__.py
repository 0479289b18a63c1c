"""Coursepilot: Dagster-free domain logic for course and peer recommendation."""

import os

__version__ = "0.1.0"

# OpenMP's idle threads (implicit's ALS, scikit-learn's k-means, torch) sleep instead of spinning: steps run
# side by side on the cores (pipelines.threads), and a spinning thread takes a core another step needs (at M,
# k-means beside the ALS tuning took 17.7 s with this against 37.0 s without; BENCHMARKS.md). Read once, when
# an OpenMP runtime loads, so it is set on the package's import, before any of them; a setting of the
# environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
