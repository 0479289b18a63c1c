"""Multi-factor profiles (equations 14-19) and nearest-course search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from coursepilot.neighbours import CourseIndex
from coursepilot.profiles import LearnerProfiles, SpanVectors, lookup, normalise_rows, weighted_profiles
from coursepilot.warehouse import read_rows_with_vectors, read_vectors, replace_tables, vector_column


def test_weighted_profile_is_normalised_weighted_mean():
    courses = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    out = weighted_profiles(
        np.array([0, 0, 1]), np.array([0, 1, 1]), np.array([3.0, 1.0, 2.0]), courses, n_learners=3
    )
    assert np.allclose(out[0], np.array([3.0, 1.0]) / np.sqrt(10))
    assert np.allclose(out[1], [0.0, 1.0]) and np.allclose(out[2], 0.0)  # learner 2 took nothing


def test_similarity_equals_cosine_of_the_concatenation():
    rng = np.random.default_rng(0)
    parts = {
        p: normalise_rows(rng.normal(size=(5, 8)).astype(np.float32))
        for p in ("desc", "job", "soft", "theme")
    }
    parts["job"][3] = 0  # unknown job
    profiles = LearnerProfiles(np.arange(5), parts)
    stacked = profiles.stacked()
    expected = stacked @ stacked[3] / (np.linalg.norm(stacked, axis=1) * np.linalg.norm(stacked[3]))
    assert np.allclose(profiles.similarity(3), expected, atol=1e-5)
    assert profiles.similarity(3)[3] == pytest.approx(1.0)


def test_usearch_index_agrees_with_exact_search():
    rng = np.random.default_rng(1)
    vectors = normalise_rows(rng.normal(size=(2000, 32)).astype(np.float32))
    exact = CourseIndex(np.arange(2000), vectors)
    ann = CourseIndex(np.arange(2000), vectors, exact_limit=0)
    assert (exact.kind, ann.kind) == ("exact", "usearch-hnsw")
    top_exact, sims = exact.search(vectors[:50], 10)
    top_ann, _ = ann.search(vectors[:50], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_exact, top_ann)])
    assert recall > 0.9 and (top_exact[:, 0] == np.arange(50)).all() and np.all(np.diff(sims, axis=1) <= 1e-6)
    assert all(cid != 7 for cid, _ in exact.similar(7, 5))
    with pytest.raises(KeyError):
        exact.similar(99999)


def test_coded_parts_give_the_looked_up_rows_and_the_same_similarity():
    rng = np.random.default_rng(2)
    table = {
        "analyst": normalise_rows(rng.normal(size=(1, 4)).astype(np.float32))[0],
        "teacher": normalise_rows(rng.normal(size=(1, 4)).astype(np.float32))[0],
    }
    jobs = pd.Series(["teacher", None, "analyst", "pilot", "teacher"])
    coded = lookup(jobs, table, 4)
    expected = np.stack([table["teacher"], np.zeros(4), table["analyst"], np.zeros(4), table["teacher"]])
    np.testing.assert_array_equal(coded[np.arange(5)], expected)
    assert coded.shape == (5, 4) and len(coded) == 5 and coded.known() == 3
    parts = {p: normalise_rows(rng.normal(size=(5, 4)).astype(np.float32)) for p in ("desc", "soft", "theme")}
    dense = LearnerProfiles(np.arange(5), {**parts, "job": expected.astype(np.float32)})
    mixed = LearnerProfiles(np.arange(5), {**parts, "job": coded})
    np.testing.assert_allclose(mixed.similarity(0), dense.similarity(0), atol=1e-6)
    assert mixed.known() == dense.known() == {"desc": 5, "soft": 5, "theme": 5, "job": 3}
    np.testing.assert_allclose(
        coded.pair_dots([0, 2, 3], [1, 4, 4]),
        (expected[[0, 2, 3]] * expected[[1, 4, 4]]).sum(axis=1),
        atol=1e-6,
    )
    # against a pool (the peer ranking's batches): every pair's cosine, float32, an unknown job included
    pool = np.array([1, 3, 4])
    np.testing.assert_allclose(
        mixed.against(pool)(np.array([0, 2, 3])),
        [[dense.similarity(r)[c] for c in pool] for r in (0, 2, 3)],
        atol=1e-6,
    )
    np.testing.assert_allclose(
        mixed.pair_similarity(np.array([0, 2]), np.array([4, 1])),
        [dense.similarity(0)[4], dense.similarity(2)[1]],
        atol=1e-6,
    )


# fewer themes than axes: weights over them; more: over the axes
@pytest.mark.parametrize("n_themes", [3, 12])
def test_theme_part_as_weights_equals_the_weighted_mean_of_theme_embeddings(n_themes):
    rng = np.random.default_rng(4)
    table = {
        f"theme {i}": normalise_rows(rng.normal(size=(1, 8)).astype(np.float32))[0] for i in range(n_themes)
    }
    # some courses have no known theme
    themes = lookup(pd.Series([f"theme {i % (n_themes + 1)}" for i in range(20)]), table, 8)
    learners, courses, weights = rng.integers(0, 29, 120), rng.integers(0, 20, 120), rng.uniform(1, 3, 120)
    learners[courses % (n_themes + 1) == n_themes] = 29  # learner 29 took only courses without a theme
    learners[learners == 28] = 27  # learner 28 took nothing
    span = SpanVectors.weighted(learners, courses, weights, themes, 30)
    dense = weighted_profiles(learners, courses, weights, themes[:], 30)
    np.testing.assert_allclose(span[np.arange(30)], dense, atol=1e-6)
    assert not dense[28:].any() and span.known() == int(dense.any(axis=1).sum()) >= 20
    assert span.shape == (30, 8) and span.coefficients.shape[1] == (n_themes + 1 if n_themes < 8 else 8)
    np.testing.assert_allclose(span.squared_norms(), (dense**2).sum(axis=1), atol=1e-5)
    rows, cols = np.array([0, 5, 28, 29]), np.array([3, 5, 1, 2])
    np.testing.assert_allclose(span.pair_dots(rows, cols), (dense[rows] * dense[cols]).sum(axis=1), atol=1e-6)
    pool = np.array([2, 7, 28, 11])
    np.testing.assert_allclose(span.pool_dots(pool)(rows), dense[rows] @ dense[pool].T, atol=1e-6)


def test_vectors_read_in_batches_come_in_id_order(con):
    rng = np.random.default_rng(3)
    ids = [f"u{i:03d}" for i in rng.permutation(50)]
    matrix = rng.normal(size=(50, 6)).astype(np.float32)
    replace_tables(
        con,
        {"vectors": pa.table({"id": ids, "tag": [f"t{i}" for i in range(50)], "v": vector_column(matrix)})},
    )
    frame, vectors = read_rows_with_vectors(con, "vectors", "id", ("v",), ("tag",), batch_rows=7)
    order = np.argsort(ids)
    assert frame["id"].tolist() == sorted(ids) and frame["tag"].tolist() == [f"t{i}" for i in order]
    np.testing.assert_array_equal(vectors["v"], matrix[order])
    np.testing.assert_array_equal(vectors["v"], read_vectors(con, "vectors", "id", "v")[1])


def test_a_subset_of_profiles_keeps_each_learners_vectors_and_similarities():
    rng = np.random.default_rng(5)
    jobs = lookup(pd.Series(["a", None, "b", "a", "b", None]), {"a": np.eye(4)[0], "b": np.eye(4)[1]}, 4)
    themes = lookup(pd.Series(["x", "y", "x"]), {"x": np.eye(4)[2], "y": np.eye(4)[3]}, 4)
    span = SpanVectors.weighted(
        rng.integers(0, 6, 20), rng.integers(0, 3, 20), rng.uniform(1, 2, 20), themes, 6
    )
    desc = normalise_rows(rng.normal(size=(6, 4)).astype(np.float32))
    profiles = LearnerProfiles(
        np.array(list("abcdef"), dtype=object), {"desc": desc, "job": jobs, "soft": desc, "theme": span}
    )
    rows = np.array([4, 1, 5])
    subset = profiles.subset(rows)
    assert list(subset.ids) == ["e", "b", "f"]
    np.testing.assert_allclose(subset.stacked(), profiles.stacked(rows), atol=1e-6)
    np.testing.assert_allclose(subset.similarity(0), profiles.similarity(4)[rows], atol=1e-6)
    assert subset.parts["job"].table is profiles.parts["job"].table  # the shared text table is not copied
