"""MiniLM on this CPU: torch vs ONNX throughput by batch size, and whether the paper's preprocessing helps.

ONNX: sentence-transformers' own ONNX backend needs optimum-onnx, which pins transformers below the
5.x that sentence-transformers 6.2 requires, so the transformer is exported with ``torch.onnx.export``
and run by onnxruntime (mean pooling and normalisation as the model's own modules do); agreement is the
lowest cosine between the two backends' embeddings of the same texts. Needs ``pip install -e '.[bench]'``.

Preprocessing is judged by neighbour precision@10: the share of each course's 10 nearest courses
(cosine) that share its label (synthetic theme, edX subject, MARS software).
Usage: python benchmarks/bench_embeddings.py [--texts N] [--batches 32 64 128 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import DATASETS, console, print_table
from coursepilot.content import course_texts
from coursepilot.embeddings import embed_texts, load_model
from coursepilot.neighbours import CourseIndex
from coursepilot.sources import load_source
from coursepilot.synthetic import SIZES, generate


def neighbour_precision(vectors: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    top, _ = CourseIndex(np.arange(len(labels)), vectors).search(vectors, k + 1)
    hits = [np.mean(labels[[t for t in row if t != i][:k]] == labels[i]) for i, row in enumerate(top)]
    return float(np.mean(hits))


class OnnxEncoder:
    """The MiniLM transformer exported to ONNX and run by onnxruntime, pooled like the torch model."""

    def __init__(self, model, folder: Path, threads: int = 2):
        import onnxruntime
        import torch

        self.tokenizer, self.max_length = model.tokenizer, model.max_seq_length
        sample = self.tokenizer(["a sentence"], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        path = folder / "minilm.onnx"
        class Tokens(torch.nn.Module):  # keyword arguments: the transformer's positional order is not stable
            def __init__(self, transformer):
                super().__init__()
                self.transformer = transformer

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                        token_type_ids=token_type_ids).last_hidden_state

        torch.onnx.export(Tokens(model[0].auto_model).eval(), tuple(sample[n] for n in names), str(path), input_names=names,
                          output_names=["tokens"], dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "tokens"]},
                          dynamo=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            feed = self.tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=self.max_length,
                                  return_tensors="np")
            tokens = self.session.run(None, {k: v.astype(np.int64) for k, v in feed.items()})[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            pooled = (tokens * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.vstack(out)


def throughput(model, texts: list[str], batches: list[int]) -> tuple[list[list], float]:
    """Rows (backend, batch, texts, sentences/s) for torch and ONNX, and the lowest cosine between them."""
    rows, reference = [], None
    for batch in batches:
        started = time.perf_counter()
        reference = model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
        rows.append(["torch", batch, len(texts), len(texts) / (time.perf_counter() - started)])
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        console.print("onnxruntime is not installed (pip install -e '.[bench]'): ONNX skipped")
        return rows, float("nan")
    with tempfile.TemporaryDirectory() as folder:
        encoder = OnnxEncoder(model, Path(folder))
        for batch in batches:
            started = time.perf_counter()
            onnx = encoder.encode(texts, batch)
            rows.append(["onnx", batch, len(texts), len(texts) / (time.perf_counter() - started)])
    return rows, float((onnx * reference).sum(axis=1).min())


def catalogues() -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    synthetic = generate(SIZES["S"])["courses"].to_pandas()
    out = {"synthetic S (theme)": (synthetic, synthetic["theme"].to_numpy())}
    if (DATASETS / "edx-catalog").exists():
        edx = load_source("catalog", DATASETS / "edx-catalog").courses.drop_duplicates("course_id")
        out["edX (subject)"] = (edx, edx["theme"].to_numpy())
    if (DATASETS / "mars-elearning").exists():
        mars = load_source("elearning", DATASETS / "mars-elearning").courses.dropna(subset=["software"])
        out["MARS (software)"] = (mars, mars["software"].str.split(";").str[0].to_numpy())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000, help="course texts per throughput run (default 1000)")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128, 256], help="batch sizes to time")
    args = parser.parse_args()
    data = catalogues()

    model = load_model()
    texts = (course_texts(data["synthetic S (theme)"][0]) * 4)[: args.texts]
    rows, agreement = throughput(model, texts, args.batches)
    print_table(f"all-MiniLM-L6-v2 throughput (sentences per second); lowest torch-ONNX cosine {agreement:.6f}",
                ["backend", "batch", "texts", "sentences/s"], rows)

    rows = []
    for name, (courses, labels) in data.items():
        scores = {pre: neighbour_precision(embed_texts(course_texts(courses, preprocess=pre)), labels) for pre in (False, True)}
        rows.append([name, len(courses), scores[False], scores[True]])
    print_table("Neighbour precision@10 (same label), raw vs preprocessed text",
                ["catalogue", "courses", "raw text", "preprocessed"], rows)


if __name__ == "__main__":
    main()
