"""Bounded evaluation at scale: seeded learner samples for the work that only measures.

The production path (ALS, the hybrid, the serving model, peers) always trains on every learner.
Work that exists to measure or to compare stops growing with the platform above these sizes:

- ``TUNING_LEARNERS``: validation learners scored per grid point or epoch while tuning;
- ``TUNING_FIT_LEARNERS``: learners whose (validation-carved) training rows the tuning fits use
  (each candidate factor count, the hybrid's validation ALS); the chosen settings are then fitted
  once on everyone. 50,000 was measured on 2026-12-02 and not kept: the served hybrid's test nDCG@10
  fell from 0.0808 to 0.0796 at L and from 0.1430 to 0.1427 at M, and the L stages it shortens were
  not faster by more than the machine's run-to-run spread (docs/evaluation.md);
- ``SCORED_LEARNERS``: test metrics are means over a seeded sample of at most this many test learners
  (the standard error of a mean nDCG@10 over 50,000 learners is about 0.001);
- ``PEER_SCORED_LEARNERS``: peer rankings are scored on a seeded sample of at most this many learners
  (the exact CF peer baseline compares each of them with everyone: about 8 ms a learner at 1M);
- ``POPULATION_LEARNERS``: the comparison models (BPR, the baselines, the neural hybrid, the rating
  models) and each seed of the evaluation report train and score on a seeded sample of at most this
  many learners, with all of their interactions.

Below each size nothing is sampled, so small platforms are evaluated whole.
"""

from __future__ import annotations

import numpy as np

from .ranking import Relevant

TUNING_LEARNERS = 20_000
TUNING_FIT_LEARNERS = 100_000
SCORED_LEARNERS = 50_000
PEER_SCORED_LEARNERS = 10_000
POPULATION_LEARNERS = 30_000


def sample_rows(n: int, limit: int, seed: int = 0) -> np.ndarray | None:
    """Sorted seeded sample of ``limit`` of ``range(n)``, or None when ``n <= limit`` (keep everyone)."""
    if n <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def sample_learners(relevant: dict, limit: int, seed: int = 0) -> dict:
    """``relevant`` restricted to a seeded random sample of at most ``limit`` learners (all of them when
    fewer)."""
    keys = np.array(sorted(relevant))
    chosen = sample_rows(len(keys), limit, seed)
    return relevant if chosen is None else {int(k): relevant[int(k)] for k in keys[chosen]}


def restrict(relevant: dict, rows: np.ndarray) -> dict:
    """``relevant`` ({learner row: columns}) re-keyed to positions in ``rows``, for learners in ``rows``
    only."""
    if isinstance(relevant, Relevant):
        return relevant.restrict(rows)
    position = {int(r): i for i, r in enumerate(rows)}
    return {position[r]: cols for r, cols in relevant.items() if r in position}


def tuning_population(fit_data, valid: dict, limit: int = TUNING_FIT_LEARNERS, seed: int = 0):
    """(``fit_data``, ``valid``) of a seeded sample of at most ``limit`` learners, for the fits that only
    tune."""
    rows = sample_rows(fit_data.shape[0], limit, seed)
    return (fit_data, valid) if rows is None else (fit_data.subset(rows), restrict(valid, rows))
