"""MiniLM on this CPU: torch vs ONNX fp32 vs ONNX int8 throughput by batch size, single-text latency, and
whether the paper's preprocessing helps.

ONNX: the product's own backend (``coursepilot/onnx_encoder.py``: the transformer exported with
``torch.onnx.export``, run by onnxruntime, pooled as the model's own modules do); ``onnx_int8`` its
dynamically quantised copy. Agreement is the lowest and mean cosine between each backend's embeddings and
torch's of the same texts. Single-text latency is the cold-start case: one short profile text through
``embed_texts`` (no cache), as the serving model embeds a new learner's profile.

Preprocessing is judged by neighbour precision@10: the share of each course's 10 nearest courses
(cosine) that share its label (synthetic theme, edX subject, MARS software).
Usage: python benchmarks/bench_embeddings.py [--texts N] [--batches 32 64 128 256] [--profiles N]
       [--no-precision]
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
from coursepilot.embeddings import BACKENDS, embed_texts
from coursepilot.minilm import MODEL_NAME, load_model
from coursepilot.neighbours import CourseIndex
from coursepilot.onnx_encoder import OnnxEncoder
from coursepilot.sources import load_source
from coursepilot.synthetic import SIZES, generate


def neighbour_precision(vectors: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    top, _ = CourseIndex(np.arange(len(labels)), vectors).search(vectors, k + 1)
    hits = [np.mean(labels[[t for t in row if t != i][:k]] == labels[i]) for i, row in enumerate(top)]
    return float(np.mean(hits))


def throughput(model, texts: list[str], batches: list[int]) -> tuple[list[list], list[list]]:
    """Rows (backend, batch, texts, sentences/s) for torch, ONNX fp32 and ONNX int8 on the same texts, and
    rows (backend, lowest cosine, mean cosine) of each against torch."""
    rows, vectors = [], {}
    for batch in batches:
        started = time.perf_counter()
        vectors["torch"] = model.encode(
            texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False
        )
        rows.append(["torch", batch, len(texts), len(texts) / (time.perf_counter() - started)])
    with tempfile.TemporaryDirectory() as folder:
        for backend in ("onnx", "onnx_int8"):
            encoder = OnnxEncoder(MODEL_NAME, Path(folder), quantized=backend == "onnx_int8")
            encoder.encode(texts[: batches[0]], batches[0])  # warm-up: the first run allocates
            for batch in batches:
                started = time.perf_counter()
                vectors[backend] = encoder.encode(texts, batch)
                rows.append([backend, batch, len(texts), len(texts) / (time.perf_counter() - started)])
    agreement = [
        [backend, float(cos.min()), float(cos.mean())]
        for backend in ("onnx", "onnx_int8")
        for cos in [(vectors[backend] * vectors["torch"]).sum(axis=1)]
    ]
    return rows, agreement


def latency(profiles: list[str], reference: np.ndarray) -> list[list]:
    """Rows (backend, texts, p50 ms, p95 ms, lowest cosine to torch) of ``embed_texts([text])`` per text."""
    rows = []
    for backend in BACKENDS:
        embed_texts(profiles[:3], backend=backend)  # warm-up: loads the model (and exports it)
        times, vectors = [], []
        for text in profiles:
            started = time.perf_counter()
            vectors.append(embed_texts([text], backend=backend)[0])
            times.append((time.perf_counter() - started) * 1000)
        cos = (np.array(vectors) * reference).sum(axis=1)
        rows.append([backend, len(profiles), *np.percentile(times, [50, 95]), float(cos.min())])
    return rows


def profile_texts(courses: pd.DataFrame, n: int) -> list[str]:
    """``n`` short profile-like texts (a job and the subject of a course), distinct, like a new learner's."""
    jobs = ["data analyst", "teacher", "nurse", "software developer", "marketing manager", "student"]
    titles = courses["title"].astype(str).tolist()
    return [f"{jobs[i % len(jobs)]} interested in {titles[i % len(titles)]}" for i in range(n)]


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
    parser.add_argument(
        "--profiles", type=int, default=200, help="profile texts timed one at a time (default 200)"
    )
    parser.add_argument(
        "--no-precision", action="store_true", help="skip the preprocessing comparison (neighbour precision)"
    )
    args = parser.parse_args()
    data = catalogues()

    model = load_model()
    texts = (course_texts(data["synthetic S (theme)"][0]) * 4)[: args.texts]
    rows, agreement = throughput(model, texts, args.batches)
    print_table(
        "all-MiniLM-L6-v2 throughput (sentences per second), same texts",
        ["backend", "batch", "texts", "sentences/s"],
        rows,
    )
    print_table(
        "Agreement with torch (cosine of the same text's embeddings)",
        ["backend", "lowest cosine", "mean cosine"],
        agreement,
    )
    profiles = profile_texts(data["synthetic S (theme)"][0], args.profiles)
    reference = model.encode(profiles, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    print_table(
        "Single-text latency (cold start: one profile text through embed_texts, no cache)",
        ["backend", "texts", "p50 ms", "p95 ms", "lowest cosine to torch"],
        latency(profiles, reference),
    )
    if args.no_precision:
        return

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
