"""The real all-MiniLM-L6-v2, loaded offline: meaning, normalisation, cache and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from coursepilot.embeddings import DIM, EmbeddingCache, EmbedStats, embed_texts, preprocess
from coursepilot.minilm import model_location


def test_similar_course_texts_are_nearer_than_unrelated_ones():
    vectors = embed_texts(
        [
            "Introduction to Python programming for data analysis with pandas",
            "Learn Python and pandas to analyse data sets step by step",
            "Watercolour painting techniques for landscapes and portraits",
        ]
    )
    assert vectors.shape == (3, DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_cache_encodes_only_new_or_changed_texts(tmp_path):
    cache = EmbeddingCache(tmp_path)
    first = EmbedStats()
    a = embed_texts(["Deep learning with PyTorch", "Accounting basics"], cache=cache, stats=first)
    assert (first.encoded, first.cached) == (2, 0)
    second = EmbedStats()
    # a fresh process would reopen the file
    b = embed_texts(
        ["Deep learning with PyTorch", "Accounting basics, revised edition"],
        cache=EmbeddingCache(tmp_path),
        stats=second,
    )
    assert (second.encoded, second.cached) == (1, 1)
    assert np.array_equal(a[0], b[0]) and not np.allclose(a[1], b[1])
    assert len(EmbeddingCache(tmp_path)) == 3


def test_bad_texts_are_named():
    with pytest.raises(TypeError, match="text 1 is float"):
        embed_texts(["fine", float("nan")])
    with pytest.raises(ValueError, match="text 0 is empty"):
        embed_texts(["   ", "fine"])


def test_very_long_text_is_embedded_and_counted_as_truncated():
    stats = EmbedStats()
    vectors = embed_texts(["spreadsheet formulas " * 2000], stats=stats)
    assert vectors.shape == (1, DIM) and stats.truncated == 1


def test_unknown_model_is_refused_offline(tmp_path):
    with pytest.raises(ValueError, match="no model hub"):
        model_location("bert-base-uncased")
    assert (model_location() / "config.json").exists()


def test_preprocess_drops_stop_words_and_punctuation():
    assert preprocess("The Basics of SQL: a first course!") == "basics sql course"


def test_onnx_backend_agrees_with_torch_and_keeps_its_export(tmp_path):
    # the last is truncated
    texts = [
        "Introduction to Python programming for data analysis with pandas",
        "Watercolour painting techniques for landscapes and portraits",
        "SQL joins " * 300,
    ]
    reference = embed_texts(texts)
    stats = EmbedStats()
    onnx = embed_texts(texts, cache=EmbeddingCache(tmp_path), stats=stats, backend="onnx")
    assert onnx.shape == (3, DIM) and onnx.dtype == np.float32 and stats.truncated == 1
    assert (onnx * reference).sum(axis=1).min() > 0.999
    exported = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(exported) == 1 and not list((tmp_path / "onnx").glob(".*"))  # no temporary file left behind
    again = EmbedStats()
    embed_texts(texts[:2], cache=EmbeddingCache(tmp_path), stats=again, backend="onnx")
    assert (again.encoded, again.cached) == (0, 2)  # the cache key is the model and the text, not the backend
    with pytest.raises(ValueError, match="choose one of torch, onnx"):
        embed_texts(["a new text"], backend="tensorflow")
