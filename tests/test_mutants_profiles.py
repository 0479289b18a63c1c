"""Profile parts' storage and edge cases, and building, storing and loading profiles from a tiny in-memory
warehouse, by hand (kills mutants of coursepilot/profiles.py)."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from coursepilot.profiles import (
    CodedVectors,
    DenseVectors,
    SpanVectors,
    _engagement,
    attribute_table,
    attribute_values,
    build_profiles,
    load_profiles,
    lookup,
    normalise_rows,
    profile_tables,
    weighted_profiles,
)
from coursepilot.warehouse import replace_tables, vector_matrix
from tests.hand_split import resplit


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


def test_empty_rows_stay_exact_zeros_among_many():
    """Rows without a vector are exact zeros, whatever memory a division without ``out`` would leave there
    (a few hundred rows: the output no longer comes from numpy's small-block cache)."""
    matrix = np.random.default_rng(0).normal(size=(200, 4))
    matrix[::2] = 0
    out = normalise_rows(matrix)
    assert not out[::2].any()
    np.testing.assert_allclose(np.linalg.norm(out[1::2], axis=1), 1)


def test_the_engagement_matrix_is_float32_learners_by_courses():
    """W holds one weight per training interaction (20M at full size): float32 halves it."""
    w = _engagement(np.array([0, 2, 2]), np.array([1, 0, 1]), np.array([2.0, 1.5, 0.25]), 3, 2)
    assert w.dtype == np.float32 and w.shape == (3, 2)
    np.testing.assert_array_equal(w.toarray(), [[0, 2], [0, 0], [1.5, 0.25]])


def test_a_theme_mix_of_norm_at_most_1e_6_counts_as_empty():
    """A mix must be heavier than 1e-6: learner 0's (float32 weight 1e-6 on a unit theme; sqrt of its square
    is exact) has norm exactly 1e-6 and is empty, learner 1's (2e-6) is normalised to the theme."""
    themes = lookup(pd.Series(["a", "a"]), {"a": np.array([1.0, 0, 0])}, 3)
    span = SpanVectors.weighted(np.array([0, 1]), np.array([0, 1]), np.array([1e-6, 2e-6]), themes, 2)
    np.testing.assert_array_equal(span.coefficients, [[0, 0], [1, 0]])  # over [a, unknown]


# --- the warehouse side on a tiny in-memory DuckDB: attribute texts, build, store, load ---
# courses c1 (0.6, 0.8, 0), c2 (0, 0, 1), c3 (1, 0, 0) with themes math, art and none;
# theme embeddings math (0, 0, 1), art (0, 1, 0); job analyst (1, 0, 0); software excel (0, 1, 0)
C1, C2, C3 = [0.6, 0.8, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]


def _table(con, name: str, columns: str, rows: list[tuple]) -> None:
    """``CREATE TABLE name (columns)`` holding ``rows`` (vectors given as lists, cast by DuckDB)."""
    con.execute(f"CREATE TABLE {name} ({columns})")
    if rows:
        con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(rows[0]))})", rows)


def _full_warehouse():
    """Three learners (inserted out of id order) with job and software, three courses, weighted interactions.

    u1 trains on c1 (watch 50, completed, rating 5 of 1-5) and c2 (watch 0, not completed, rating 1), tests
    on c3; u2 trains on c2 (watch 100, completed unknown, rating 3) and c3 (nothing known); u3 only tests.
    """
    con = duckdb.connect()
    _table(
        con,
        "learners",
        "learner_id VARCHAR, job VARCHAR, software VARCHAR",
        [("u3", "pilot", "excel"), ("u1", "analyst", None), ("u2", None, "excel")],
    )
    # c0 has no embedding (added after they were built): left out, the other courses keep their themes
    courses = [("c2", "art"), ("c3", None), ("c0", "art"), ("c1", "math")]
    _table(con, "courses", "course_id VARCHAR, theme VARCHAR", courses)
    _table(
        con,
        "interactions",
        "learner_id VARCHAR, course_id VARCHAR, watch_pct DOUBLE, completed BOOLEAN, rating DOUBLE",
        [
            ("u1", "c1", 50.0, True, 5.0),
            ("u1", "c2", 0.0, False, 1.0),
            ("u1", "c3", 100.0, True, 5.0),
            ("u2", "c2", 100.0, None, 3.0),
            ("u2", "c3", None, False, None),
            ("u3", "c1", 100.0, True, 5.0),
        ],
    )
    _table(
        con,
        "split",
        "learner_id VARCHAR, course_id VARCHAR, split VARCHAR",
        [
            ("u1", "c1", "train"),
            ("u1", "c2", "train"),
            ("u1", "c3", "test"),
            ("u2", "c2", "train"),
            ("u2", "c3", "train"),
            ("u3", "c1", "test"),
        ],
    )
    vectors = [("c3", C3), ("c1", C1), ("c2", C2)]
    _table(con, "course_embeddings", "course_id VARCHAR, embedding FLOAT[3]", vectors)
    _table(
        con,
        "attribute_embeddings",
        "kind VARCHAR, value VARCHAR, embedding FLOAT[3]",
        [
            ("job", "analyst", [1.0, 0.0, 0.0]),
            ("theme", "math", [0.0, 0.0, 1.0]),
            ("software", "excel", [0.0, 1.0, 0.0]),
            ("theme", "art", [0.0, 1.0, 0.0]),
        ],
    )
    resplit(con)
    return con


def _bare_warehouse():
    """The same courses and vectors with ids only: no job, software, theme or weight columns, no attributes.

    u1 trains on c1 and c2, u2 on nothing.
    """
    con = duckdb.connect()
    _table(con, "learners", "learner_id VARCHAR", [("u2",), ("u1",)])
    _table(con, "courses", "course_id VARCHAR", [("c1",), ("c2",)])
    pairs = [("u1", "c1"), ("u1", "c2")]
    _table(con, "interactions", "learner_id VARCHAR, course_id VARCHAR", pairs)
    split = [(*pair, "train") for pair in pairs]
    _table(con, "split", "learner_id VARCHAR, course_id VARCHAR, split VARCHAR", split)
    resplit(con)
    _table(con, "course_embeddings", "course_id VARCHAR, embedding FLOAT[3]", [("c1", C1), ("c2", C2)])
    _table(con, "attribute_embeddings", "kind VARCHAR, value VARCHAR, embedding FLOAT[3]", [])
    return con


def test_attribute_values_are_the_distinct_non_blank_texts_in_order():
    con = duckdb.connect()
    _table(
        con,
        "learners",
        "learner_id VARCHAR, job VARCHAR, software VARCHAR",
        [
            ("a", "teacher", "excel"),
            ("b", None, ""),
            ("c", "  ", "R"),
            ("d", "analyst", "excel"),
            ("e", "teacher", None),
        ],
    )
    _table(con, "courses", "course_id VARCHAR, theme VARCHAR", [("x", "math"), ("y", ""), ("z", "art")])
    assert attribute_values(con) == {
        "job": ["analyst", "teacher"],
        "software": ["R", "excel"],  # ORDER BY 1: upper case sorts first
        "theme": ["art", "math"],
    }
    # a source without job, software or theme columns: every kind empty
    bare = _bare_warehouse()
    assert attribute_values(bare) == {"job": [], "software": [], "theme": []}


def test_attribute_table_by_kind_and_an_empty_table():
    table = attribute_table(_full_warehouse())
    assert list(table) == ["job", "software", "theme"]
    assert list(table["theme"]) == ["math", "art"]  # in stored order
    np.testing.assert_array_equal(table["job"]["analyst"], [1, 0, 0])
    np.testing.assert_array_equal(table["software"]["excel"], [0, 1, 0])
    np.testing.assert_array_equal(table["theme"]["math"], [0, 0, 1])
    np.testing.assert_array_equal(table["theme"]["art"], [0, 1, 0])
    assert attribute_table(_bare_warehouse()) == {"job": {}, "software": {}, "theme": {}}


def test_build_profiles_by_hand():
    learners, profiles = build_profiles(_full_warehouse(), (1.0, 5.0))
    assert learners["learner_id"].tolist() == ["u1", "u2", "u3"] == list(profiles.ids)
    assert learners["job"].tolist() == ["analyst", None, "pilot"]
    # weights 1 + watch/100 + completed + (rating - 1)/4: u1 c1 3.5, c2 1; u2 c2 2.5, c3 1; test rows left out
    u1 = 3.5 * np.array(C1) + np.array(C2)  # (2.1, 2.8, 1), norm sqrt(13.25)
    u2 = 2.5 * np.array(C2) + np.array(C3)  # (1, 0, 2.5), norm sqrt(7.25)
    desc = profiles.parts["desc"]
    assert isinstance(desc, DenseVectors)
    np.testing.assert_allclose(desc.matrix, [u1 / np.sqrt(13.25), u2 / np.sqrt(7.25), [0, 0, 0]], rtol=1e-6)
    # job: analyst known, none and pilot (no embedding) unknown; software: excel for u2 and u3
    np.testing.assert_array_equal(profiles.parts["job"][np.arange(3)], [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(profiles.parts["soft"][np.arange(3)], [[0, 0, 0], [0, 1, 0], [0, 1, 0]])
    # theme: two themes and the unknown row (3 rows, 3 axes): weights over [math, art, unknown];
    # u1 3.5 math + 1 art = (0, 1, 3.5), norm sqrt(13.25); u2 2.5 art (+ 1 on the unknown row), norm 2.5
    theme = profiles.parts["theme"]
    np.testing.assert_array_equal(theme.basis, [[0, 0, 1], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(
        theme.coefficients, [np.array([3.5, 1, 0]) / np.sqrt(13.25), [0, 1, 0.4], [0, 0, 0]], rtol=1e-6
    )
    np.testing.assert_allclose(theme[np.arange(3)][1], [0, 1, 0], rtol=1e-6)
    assert profiles.known() == {"desc": 2, "job": 1, "soft": 2, "theme": 2}


def test_build_profiles_without_attributes_or_weight_columns():
    learners, profiles = build_profiles(_bare_warehouse(), None)
    assert learners["learner_id"].tolist() == ["u1", "u2"]
    # every interaction weighs 1: u1 = (c1 + c2) / |c1 + c2| = (0.6, 0.8, 1) / sqrt(2)
    u1 = np.array([0.6, 0.8, 1]) / np.sqrt(2)
    np.testing.assert_allclose(profiles.parts["desc"].matrix, [u1, [0, 0, 0]], rtol=1e-6)
    for part in ("job", "soft", "theme"):
        assert profiles.parts[part].shape == (2, 3)
        np.testing.assert_array_equal(profiles.parts[part][np.arange(2)], np.zeros((2, 3)))
    assert profiles.known() == {"desc": 1, "job": 0, "soft": 0, "theme": 0}


def test_profile_tables_and_load_profiles_round_trip():
    con = _full_warehouse()
    learners, built = build_profiles(con, (1.0, 5.0))
    tables = profile_tables(learners, built)
    stored = tables["learner_profiles"]
    assert stored.column_names == ["learner_id", "job", "software", "desc", "theme"]
    assert stored.column("learner_id").to_pylist() == ["u1", "u2", "u3"]
    assert stored.column("job").to_pylist() == ["analyst", None, "pilot"]
    assert stored.column("software").to_pylist() == [None, "excel", "excel"]
    np.testing.assert_array_equal(vector_matrix(stored.column("desc")), built.parts["desc"].matrix)
    np.testing.assert_array_equal(vector_matrix(stored.column("theme")), built.parts["theme"].coefficients)
    basis = tables["learner_theme_basis"]
    assert basis.column("position").to_pylist() == [0, 1, 2]
    np.testing.assert_array_equal(vector_matrix(basis.column("embedding")), built.parts["theme"].basis)

    replace_tables(con, tables)
    loaded = load_profiles(con)
    assert list(loaded.ids) == ["u1", "u2", "u3"] and loaded.ids.dtype == object
    assert isinstance(loaded.parts["theme"], SpanVectors)
    np.testing.assert_array_equal(loaded.parts["theme"].coefficients, built.parts["theme"].coefficients)
    np.testing.assert_array_equal(loaded.parts["theme"].basis, built.parts["theme"].basis)
    np.testing.assert_array_equal(loaded.stacked(), built.stacked())
    assert loaded.known() == built.known()


def test_profile_tables_and_load_without_job_or_software():
    con = _bare_warehouse()
    learners, built = build_profiles(con, None)
    tables = profile_tables(learners, built)
    assert tables["learner_profiles"].column("job").to_pylist() == [None, None]
    assert tables["learner_profiles"].column("software").to_pylist() == [None, None]
    # no theme anywhere: the basis is the single unknown (zero) row
    assert tables["learner_theme_basis"].column("position").to_pylist() == [0]
    replace_tables(con, tables)
    loaded = load_profiles(con)
    for part in ("job", "soft"):
        assert loaded.parts[part].shape == (2, 3) and loaded.parts[part].known() == 0
    np.testing.assert_array_equal(loaded.stacked(), built.stacked())
