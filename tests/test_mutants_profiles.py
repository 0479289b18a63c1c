"""Profile parts' storage and edge cases by hand (kills mutants of coursepilot/profiles.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from coursepilot.profiles import (
    CodedVectors,
    DenseVectors,
    SpanVectors,
    lookup,
    normalise_rows,
    weighted_profiles,
)


def test_parts_are_stored_in_float32_whatever_they_are_given():
    """A million learners' profiles: float32 halves them, so every part stores float32."""
    wide = np.array([[3.0, 4.0], [0.0, 0.0]])  # float64
    assert DenseVectors(wide).matrix.dtype == np.float32
    assert CodedVectors(np.array([0, -1]), wide).table.dtype == np.float32
    span = SpanVectors(wide, np.eye(2))
    assert span.coefficients.dtype == span.basis.dtype == np.float32
    profiles = weighted_profiles(np.array([0]), np.array([1]), np.array([2.0]), wide, n_learners=2)
    assert profiles.dtype == np.float32
    np.testing.assert_allclose(profiles, [[0, 0], [0, 0]])  # course 1 has a zero vector
    np.testing.assert_allclose(normalise_rows(wide), [[0.6, 0.8], [0, 0]])


def test_theme_spans_over_the_axes_are_float32_and_a_light_weight_is_still_normalised():
    # three themes on two axes: the span is over the axes (an identity basis)
    themes = lookup(
        pd.Series(["a", "b", "c"]),
        {"a": np.array([1.0, 0]), "b": np.array([0, 1.0]), "c": np.array([0.6, 0.8])},
        2,
    )
    span = SpanVectors.weighted(
        np.array([0, 1, 1]), np.array([0, 1, 2]), np.array([0.5, 0.1, 0.1]), themes, 3
    )
    assert span.coefficients.dtype == span.basis.dtype == np.float32
    np.testing.assert_array_equal(span.basis, np.eye(2))
    # learner 0: half of theme a, normalised to a; learner 1: 0.1 (b + c) = (0.06, 0.18), normalised
    np.testing.assert_allclose(
        span[np.arange(3)], [[1, 0], np.array([0.06, 0.18]) / np.hypot(0.06, 0.18), [0, 0]], rtol=1e-6
    )
    np.testing.assert_allclose(span.squared_norms(), [1, 1, 0], rtol=1e-6)


def test_lookup_in_an_empty_table_gives_unknown_rows():
    coded = lookup(pd.Series(["analyst", None]), {}, 3)
    assert coded.shape == (2, 3) and coded.known() == 0
    np.testing.assert_array_equal(coded[np.arange(2)], np.zeros((2, 3)))
