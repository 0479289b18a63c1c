"""all-MiniLM-L6-v2 run by onnxruntime: the default backend for bulk encoding.

The transformer is exported once per model version with ``torch.onnx.export`` (sentence-transformers'
own ONNX backend needs optimum-onnx, which does not install beside sentence-transformers 6.2) and
kept under the project home. Encoding then needs only the tokenizer and onnxruntime: tokenise with
the model's own tokenizer (truncated at its ``max_seq_length``), run, mean-pool over the attention
mask and L2-normalise, exactly as the model's pooling and normalisation modules do. Measured on 2
cores: 88.7 vs 69.4 sentences/s for torch, lowest cosine between the two 1.000000
(``benchmarks/bench_embeddings.py``).

``quantized=True`` runs an int8 copy of that export instead (``quantize``: onnxruntime's dynamic
quantisation, weights int8 per output channel, activations quantised on the fly), kept beside it and made
once per model version. Measured on 400 MARS course texts against torch (2 busy cores): per-tensor QInt8
lowest cosine 0.867, per-tensor QUInt8 0.954, per-channel QInt8 0.987 (mean 0.994), per-channel QUInt8
0.988 (mean 0.995) but a third slower than per-channel QInt8, which is the one used. Activations are
quantised per batch: the same text batched with others (32 vs 64, or alone) differs by cosine down to 0.991.
``benchmarks/bench_embeddings.py`` (2 cores shared with other jobs, load about 5): 20.3 sentences/s vs 11.1
for fp32 ONNX and 7.8 for torch; one text p50 12.7 vs 24.2 vs 244 ms; cosine to torch lowest 0.990, mean
0.994. MARS's course stage took 5m32s vs 9m31s for fp32 (both runs side by side).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .imports import IMPORTING

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
QUANTIZATION = "qint8pc"  # in the file name: another choice of quantisation is another file


def export(model_name: str, path: Path) -> Path:
    """Export the model's transformer to ``path`` (atomically: a killed export leaves no file behind)."""
    with IMPORTING:
        import torch

    from .minilm import load_model

    model = load_model(model_name, "cpu")

    class Tokens(torch.nn.Module):  # keyword arguments: the transformer's positional order is not stable
        def __init__(self, transformer):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = model.tokenizer(["a sentence"], return_tensors="pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        # the exporter imports its opset modules as it goes
        with IMPORTING, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on traced control flow and index ops
            torch.onnx.export(
                Tokens(model[0].auto_model).eval(),
                tuple(sample[n] for n in INPUTS),
                tmp,
                input_names=list(INPUTS),
                output_names=["tokens"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*INPUTS, "tokens"]},
                dynamo=False,
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def quantize(source: Path, path: Path) -> Path:
    """An int8 copy of the fp32 export ``source`` at ``path`` (atomically, like ``export``)."""
    with IMPORTING:
        from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(source), tmp, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def model_files(model_name: str, folder: Path) -> tuple[Path, Path]:
    """Where the fp32 export and its int8 copy are kept in ``folder`` (named by the model version)."""
    from .minilm import model_id, text_key

    stem = f"minilm-{text_key(model_id(model_name), 'onnx')[:16]}"
    return Path(folder) / f"{stem}.onnx", Path(folder) / f"{stem}-{QUANTIZATION}.onnx"


class OnnxEncoder:
    """``encode(texts, batch_size)`` like a SentenceTransformer's, plus its ``tokenizer`` and
    ``max_seq_length``. ``quantized``: run the int8 copy (made from the fp32 export on first use)."""

    def __init__(self, model_name: str, folder: Path, threads: int | None = None, quantized: bool = False):
        with IMPORTING:
            import onnxruntime
            from transformers import AutoTokenizer

        from .minilm import model_location

        location = model_location(model_name)
        path, int8 = model_files(model_name, folder)
        if not path.exists() and not (quantized and int8.exists()):
            export(model_name, path)
        if quantized:
            if not int8.exists():
                quantize(path, int8)
            path = int8
        self.tokenizer = AutoTokenizer.from_pretrained(str(location))
        self.max_seq_length = int(
            json.loads((location / "sentence_bert_config.json").read_text())["max_seq_length"]
        )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 32, **_ignored) -> np.ndarray:
        """L2-normalised mean-pooled embeddings, float32 (keyword arguments of SentenceTransformer.encode are
        accepted)."""
        # texts of similar length share a batch: less padding
        order = np.argsort([-len(t) for t in texts], kind="stable")
        ordered = [texts[i] for i in order]
        out = []
        for start in range(0, len(texts), batch_size):
            feed = self.tokenizer(
                ordered[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="np",
            )
            tokens = self.session.run(None, {name: feed[name].astype(np.int64) for name in INPUTS})[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            pooled = (tokens * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out.append(pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12))
        if not out:
            return np.zeros((0, 384), np.float32)
        vectors = np.empty((len(texts), out[0].shape[1]), dtype=np.float32)
        vectors[order] = np.vstack(out)
        return vectors
