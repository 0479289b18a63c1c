"""Paired t-test and bootstrap interval against hand-computed cases (kills mutants of
coursepilot/evaluation/significance.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coursepilot.evaluation.significance import bootstrap_ci, paired_ttest


def _t2_quantile(p: float) -> float:
    """Student t quantile with 2 degrees of freedom, closed form: (2p - 1) / sqrt(2 p (1 - p))."""
    return (2 * p - 1) / math.sqrt(2 * p * (1 - p))


def test_paired_ttest_by_hand_with_two_degrees_of_freedom():
    # differences a - b = (0, 2, 4): mean 2, sd 2, t = 2 / (2 / sqrt 3) = sqrt 3, df 2;
    # with 2 df the t CDF is 1/2 + t / (2 sqrt(2 + t^2)), so p = 1 - sqrt(3 / 5)
    result = paired_ttest([1.0, 4.0, 7.0], [1.0, 2.0, 3.0])
    assert result["mean_diff"] == pytest.approx(2.0) and result["df"] == 2 and result["n"] == 3
    assert result["t"] == pytest.approx(math.sqrt(3))
    assert result["p"] == pytest.approx(1 - math.sqrt(0.6))
    assert result["cohens_d"] == pytest.approx(1.0)
    half = _t2_quantile(0.975) * 2 / math.sqrt(3)  # 4.3027 * sd / sqrt(n)
    assert result["ci_low"] == pytest.approx(2.0 - half) and result["ci_high"] == pytest.approx(2.0 + half)


def test_paired_ttest_confidence_sets_the_interval():
    result = paired_ttest([1.0, 4.0, 7.0], [1.0, 2.0, 3.0], confidence=0.9)
    half = _t2_quantile(0.95) * 2 / math.sqrt(3)  # 2.92 * sd / sqrt(n)
    assert result["ci_low"] == pytest.approx(2.0 - half) and result["ci_high"] == pytest.approx(2.0 + half)


def test_paired_ttest_reversed_pairs_flip_the_sign():
    result = paired_ttest([1.0, 2.0, 3.0], [1.0, 4.0, 7.0])
    assert result["mean_diff"] == pytest.approx(-2.0) and result["t"] == pytest.approx(-math.sqrt(3))
    assert result["cohens_d"] == pytest.approx(-1.0) and result["p"] == pytest.approx(1 - math.sqrt(0.6))


def test_paired_ttest_of_two_learners_is_allowed():
    result = paired_ttest([1.0, 3.0], [0.0, 0.0])  # differences (1, 3): mean 2, sd sqrt 2, df 1
    assert result["df"] == 1 and result["n"] == 2 and result["mean_diff"] == pytest.approx(2.0)
    assert result["t"] == pytest.approx(2.0 / (math.sqrt(2) / math.sqrt(2)))
    with pytest.raises(ValueError, match="^a paired t-test needs at least two learners$"):
        paired_ttest([], [])


def test_constant_differences_give_the_degenerate_test():
    shifted = paired_ttest([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])  # every difference 0.5: sd 0
    assert shifted == {
        "mean_diff": 0.5,
        "t": math.inf,
        "df": 2,
        "p": 0.0,
        "ci_low": 0.5,
        "ci_high": 0.5,
        "cohens_d": math.inf,
        "n": 3,
    }
    same = paired_ttest([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same == {
        "mean_diff": 0.0,
        "t": 0.0,
        "df": 2,
        "p": 1.0,
        "ci_low": 0.0,
        "ci_high": 0.0,
        "cohens_d": 0.0,
        "n": 3,
    }


def _reference_bootstrap(values, confidence, resamples, seed, chunk):
    """The documented procedure written out: multinomial counts of n draws, chunk resamples at a time."""
    n = len(values)
    rng = np.random.default_rng(seed)
    means, left = [], resamples
    while left > 0:
        size = min(chunk, left)
        counts = rng.multinomial(n, [1 / n] * n, size=size)
        means.extend(counts @ values / n)
        left -= size
    means = np.array(means)
    assert len(means) == resamples
    tail = (1 - confidence) / 2 * 100
    return np.percentile(means, tail, axis=0), np.percentile(means, 100 - tail, axis=0)


@pytest.mark.parametrize(
    "confidence, resamples, seed, chunk", [(0.95, 1000, 0, 100), (0.8, 250, 7, 100), (0.9, 30, 1, 7)]
)
def test_bootstrap_follows_the_documented_procedure(confidence, resamples, seed, chunk):
    values = np.c_[np.arange(12.0) ** 2, np.linspace(0.0, 1.0, 12)]
    if (confidence, resamples, seed, chunk) == (0.95, 1000, 0, 100):
        low, high = bootstrap_ci(values)  # the defaults
    else:
        low, high = bootstrap_ci(values, confidence=confidence, resamples=resamples, seed=seed, chunk=chunk)
    ref_low, ref_high = _reference_bootstrap(values, confidence, resamples, seed, chunk)
    np.testing.assert_allclose(low, ref_low) and np.testing.assert_allclose(high, ref_high)
    assert (low < values.mean(axis=0)).all() and (values.mean(axis=0) < high).all()


def test_bootstrap_of_two_learners_is_allowed_and_of_identical_learners_collapses():
    low, high = bootstrap_ci(np.array([[1.0], [1.0]]))
    assert low[0] == pytest.approx(1.0) and high[0] == pytest.approx(1.0)
    low, high = bootstrap_ci(np.array([[0.0], [1.0]]), confidence=0.5, resamples=400)
    assert 0.0 <= low[0] <= 0.5 <= high[0] <= 1.0 and low[0] < high[0]
    with pytest.raises(ValueError, match="^a bootstrap interval needs at least two learners$"):
        bootstrap_ci(np.ones((1, 3)))
