"""The real all-MiniLM-L6-v2, loaded offline: meaning, normalisation, cache and bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from coursepilot.embeddings import DIM, EmbeddingCache, EmbedStats, embed_texts, preprocess
from coursepilot.minilm import MODEL_NAME, model_location
from coursepilot.onnx_encoder import OnnxEncoder, model_files


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


def test_a_text_repeated_in_one_call_is_encoded_once():
    stats = EmbedStats()
    texts = ["Nurse Excel", "Teacher Python", "Nurse Excel", "Nurse Excel"]
    vectors = embed_texts(texts, stats=stats)
    assert (stats.encoded, stats.cached) == (2, 0)  # no cache: nothing came from it
    assert np.array_equal(vectors[0], vectors[2]) and np.array_equal(vectors[0], vectors[3])
    np.testing.assert_allclose(vectors[1], embed_texts(["Teacher Python"])[0], atol=1e-6)


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
    with pytest.raises(ValueError, match="choose one of torch, onnx, onnx_int8"):
        embed_texts(["a new text"], backend="tensorflow")


def test_int8_backend_is_close_to_torch_keeps_its_file_and_its_own_cache_entries(tmp_path):
    texts = [
        "Introduction to Python programming for data analysis with pandas",
        "Watercolour painting techniques for landscapes and portraits",
        "Video editing in Premiere Pro: cuts, transitions and colour grading",
        "data analyst who uses Python and SQL",
    ]
    reference = embed_texts(texts)
    stats = EmbedStats()
    int8 = embed_texts(texts, cache=EmbeddingCache(tmp_path), stats=stats, backend="onnx_int8")
    assert int8.shape == (4, DIM) and int8.dtype == np.float32 and stats.encoded == 4
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert (int8 * reference).sum(axis=1).min() >= 0.98
    folder = tmp_path / "onnx"
    fp32_file, int8_file = model_files(MODEL_NAME, folder)
    assert int8_file.exists() and fp32_file.exists()  # the int8 copy is kept beside the fp32 export
    assert not list(folder.glob(".*"))  # no temporary file left behind
    made = int8_file.stat().st_mtime_ns
    # the same vectors from the cache, and the kept file when a fresh encoder starts
    again = EmbedStats()
    cached = embed_texts(texts, cache=EmbeddingCache(tmp_path), stats=again, backend="onnx_int8")
    assert (again.encoded, again.cached) == (0, 4) and np.array_equal(cached, int8)
    fresh = OnnxEncoder(MODEL_NAME, folder, quantized=True).encode(texts, batch_size=64)
    assert np.allclose(fresh, int8, atol=1e-6) and int8_file.stat().st_mtime_ns == made
    # fp32 vectors never come from int8 entries, nor int8 ones from fp32 entries
    fp32_stats = EmbedStats()
    fp32 = embed_texts(texts, cache=EmbeddingCache(tmp_path), stats=fp32_stats, backend="onnx")
    assert (fp32_stats.encoded, fp32_stats.cached) == (4, 0)
    assert (fp32 * reference).sum(axis=1).min() > 0.999 and not np.allclose(fp32, int8, atol=1e-4)
    torch_stats = EmbedStats()
    embed_texts(texts[:2], cache=EmbeddingCache(tmp_path), stats=torch_stats, backend="torch")
    assert (torch_stats.encoded, torch_stats.cached) == (0, 2)  # torch and fp32 onnx share entries
    assert len(EmbeddingCache(tmp_path)) == 8
    with pytest.raises(ValueError, match="choose one of torch, onnx, onnx_int8"):
        embed_texts(["a new text"], backend="onnx_int4")


def test_encodings_on_threads_at_once_get_their_own_vectors_and_the_cache_keeps_both(tmp_path):
    texts = {
        "courses": ["Linear algebra for data science", "Painting with watercolours", "Intro to SQL"],
        "profiles": ["Data analyst using Excel and SQL", "Nurse learning statistics"],
    }
    encoded = {}

    def encode(name):
        encoded[name] = embed_texts(texts[name], cache=EmbeddingCache(tmp_path))

    threads = [threading.Thread(target=encode, args=(name,)) for name in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, batch in texts.items():
        np.testing.assert_allclose(encoded[name], embed_texts(batch), atol=1e-5)
    assert len(EmbeddingCache(tmp_path)) == 5
