"""MiniLM on this CPU: torch vs ONNX throughput by batch size, and whether the paper's preprocessing helps.

ONNX: the product's own backend (``coursepilot/onnx_encoder.py``: the transformer exported with
``torch.onnx.export``, run by onnxruntime, pooled as the model's own modules do); agreement is the
lowest cosine between the two backends' embeddings of the same texts.

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

from common import DATASETS, print_table
from coursepilot.content import course_texts
from coursepilot.embeddings import embed_texts
from coursepilot.minilm import MODEL_NAME, load_model
from coursepilot.neighbours import CourseIndex
from coursepilot.onnx_encoder import OnnxEncoder
from coursepilot.sources import load_source
from coursepilot.synthetic import SIZES, generate


def neighbour_precision(vectors: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    top, _ = CourseIndex(np.arange(len(labels)), vectors).search(vectors, k + 1)
    hits = [np.mean(labels[[t for t in row if t != i][:k]] == labels[i]) for i, row in enumerate(top)]
    return float(np.mean(hits))


def throughput(model, texts: list[str], batches: list[int]) -> tuple[list[list], float]:
    """Rows (backend, batch, texts, sentences/s) for torch and ONNX, and the lowest cosine between them."""
    rows, reference = [], None
    for batch in batches:
        started = time.perf_counter()
        reference = model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
        rows.append(["torch", batch, len(texts), len(texts) / (time.perf_counter() - started)])
    with tempfile.TemporaryDirectory() as folder:
        encoder = OnnxEncoder(MODEL_NAME, Path(folder))
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
    parser.add_argument(
        "--texts", type=int, default=1000, help="course texts per throughput run (default 1000)"
    )
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[32, 64, 128, 256], help="batch sizes to time"
    )
    args = parser.parse_args()
    data = catalogues()

    model = load_model()
    texts = (course_texts(data["synthetic S (theme)"][0]) * 4)[: args.texts]
    rows, agreement = throughput(model, texts, args.batches)
    print_table(
        f"all-MiniLM-L6-v2 throughput (sentences per second); lowest torch-ONNX cosine {agreement:.6f}",
        ["backend", "batch", "texts", "sentences/s"],
        rows,
    )

    rows = []
    for name, (courses, labels) in data.items():
        scores = {
            pre: neighbour_precision(embed_texts(course_texts(courses, preprocess=pre)), labels)
            for pre in (False, True)
        }
        rows.append([name, len(courses), scores[False], scores[True]])
    print_table(
        "Neighbour precision@10 (same label), raw vs preprocessed text",
        ["catalogue", "courses", "raw text", "preprocessed"],
        rows,
    )


if __name__ == "__main__":
    main()
