"""Paired t-tests over learners (the second paper's Table 1): is model A better than model B?"""

from __future__ import annotations

import numpy as np
from scipy import stats


def paired_ttest(a, b, confidence: float = 0.95) -> dict[str, float]:
    """Mean difference a - b, t, df, two-sided p, its confidence interval and Cohen's d (d_z = mean / sd of
    differences)."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    n = len(diff)
    if n < 2:
        raise ValueError("a paired t-test needs at least two learners")
    mean, sd = float(diff.mean()), float(diff.std(ddof=1))
    if sd == 0:
        return {
            "mean_diff": mean,
            "t": float("inf") if mean else 0.0,
            "df": n - 1,
            "p": 0.0 if mean else 1.0,
            "ci_low": mean,
            "ci_high": mean,
            "cohens_d": float("inf") if mean else 0.0,
            "n": n,
        }
    t, p = stats.ttest_rel(a, b)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n)
    return {
        "mean_diff": mean,
        "t": float(t),
        "df": n - 1,
        "p": float(p),
        "ci_low": mean - half,
        "ci_high": mean + half,
        "cohens_d": mean / sd,
        "n": n,
    }


def bootstrap_ci(
    values: np.ndarray, confidence: float = 0.95, resamples: int = 1000, seed: int = 0, chunk: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the column means of ``values`` (learners x columns), resampling
    learners.

    Every column sees the same resamples (so intervals of models scored on the same learners are comparable);
    the resamples are drawn as multinomial counts, ``chunk`` at a time, so memory stays at ``chunk`` x
    learners.
    """
    values = np.asarray(values, float)
    n = len(values)
    if n < 2:
        raise ValueError("a bootstrap interval needs at least two learners")
    rng = np.random.default_rng(seed)
    means = np.vstack(
        [
            rng.multinomial(n, np.full(n, 1 / n), size=min(chunk, resamples - start)) @ values / n
            for start in range(0, resamples, chunk)
        ]
    )
    tail = (1 - confidence) / 2 * 100
    return np.percentile(means, tail, axis=0), np.percentile(means, 100 - tail, axis=0)
