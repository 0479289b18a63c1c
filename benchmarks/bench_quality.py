"""Quality: the shipped recommender against the strongest bare-library models on the report's seed-0 split.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_quality.py [--datasets mars oulad ibm S M] [--work DIR]
       [--reuse] [--markdown FILE]

Per dataset, ``coursepilot evaluate`` writes OUT/report.json (and OUT/per_learner.parquet where the report
writes it). The script then rebuilds the report's seed-0 split from HOME/warehouse.duckdb exactly as
``coursepilot.evaluation.report.evaluate_all`` does and trains bare peers straight from the libraries:
implicit's ALS, BPR, cosine and BM25 item-kNN, a closed-form EASE in numpy, and popularity. Each peer's grid
is fitted on training minus the validation carve; the best by validation nDCG@10 is refitted on all of
training and scored on test with the report's candidates (every course not taken in training) and metric code.
Peers are seed 0 only; our models come from report.json (mean over its seeds) and, for the ratio and the
paired t-test, from per_learner.parquet (seed 0, the same learners). The best bare peer is the one with the
highest test nDCG@10 (a choice on test, which favours the peers). Targets: hybrid >= best bare peer on every
dataset, and >= 1.10x on MARS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np
import pandas as pd
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
from implicit.utils import ParameterWarning
from scipy import sparse
from threadpoolctl import threadpool_limits

from common import console, interaction_datasets, markdown_table, print_table
from coursepilot.evaluation.metrics import hit_matrix, metrics_from_hits
from coursepilot.evaluation.protocol import held_out
from coursepilot.evaluation.report import isolated_copy, refit_learner_labels
from coursepilot.evaluation.significance import paired_ttest
from coursepilot.models.base import load_train_data
from coursepilot.models.hybrid import validation_data
from coursepilot.ranking import top_k
from coursepilot.sampling import TUNING_LEARNERS, sample_learners
from coursepilot.splits import SplitConfig, build_split

SYNTHETIC = ("S", "M")
OURS = ("hybrid", "hybrid_eq6", "ease", "item_knn", "als", "popularity")
MIN_RATIO = {"mars": 1.10}  # hybrid / best bare peer must reach this (1.0 elsewhere)
WEIGHTS = ("binary", "confidence")  # the peer's input: ones, or the split's confidence matrix
# implicit's threads: on a shared 2-core machine one is faster than spinning two, and BPR is reproducible
THREADS = 1
KNN_K = (20, 100, 500)  # neighbours kept per course by the item-kNN peers
Scorer = Callable[[np.ndarray], np.ndarray]  # learner rows -> (rows, courses) scores


@dataclass(frozen=True)
class Split:
    """The report's seed-0 split as matrices: train, train minus the validation carve, and the held-out
    sets."""

    learner_ids: np.ndarray
    train: sparse.csr_matrix
    fit: sparse.csr_matrix
    valid: dict[int, set[int]]
    test: dict[int, set[int]]


@dataclass(frozen=True)
class Peer:
    name: str
    fit: Callable[..., Scorer]  # (matrix, **params) -> scorer
    grid: tuple[dict, ...]


@dataclass(frozen=True)
class Result:
    name: str
    choice: str
    valid_ndcg: float
    learner_ids: np.ndarray  # test learners, aligned with the per-learner arrays
    ndcg: np.ndarray
    recall: np.ndarray
    seconds: float


def _input(matrix: sparse.csr_matrix, weights: str) -> sparse.csr_matrix:
    out = matrix.astype(np.float32)
    if weights == "binary":
        out.data[:] = 1.0
    return out


def fit_als(matrix, factors: int, regularization: float, alpha: float, weights: str) -> Scorer:
    model = AlternatingLeastSquares(
        factors=factors,
        regularization=regularization,
        alpha=alpha,
        iterations=15,
        random_state=0,
        num_threads=THREADS,
    )
    model.fit(_input(matrix, weights), show_progress=False)
    return lambda rows: model.user_factors[rows] @ model.item_factors.T


def fit_bpr(matrix, factors: int, learning_rate: float) -> Scorer:
    model = BayesianPersonalizedRanking(
        factors=factors,
        learning_rate=learning_rate,
        regularization=0.01,
        iterations=100,
        random_state=0,
        num_threads=THREADS,
    )
    model.fit(_input(matrix, "binary"), show_progress=False)
    # the item bias rides on a column of ones
    return lambda rows: model.user_factors[rows] @ model.item_factors.T


def fit_item_knn(kind, matrix, K: int, weights: str) -> Scorer:
    weighted = _input(matrix, weights)
    model = kind(K=K, num_threads=THREADS)
    with warnings.catch_warnings():  # implicit converts its own COO weighting to CSR and warns about it
        warnings.simplefilter("ignore", ParameterWarning)
        model.fit(weighted, show_progress=False)
    return lambda rows: (weighted[rows] @ model.similarity).toarray()


def fit_ease(matrix, lam: float) -> Scorer:
    """Steck's EASE: B = I - P / diag(P), P = (XᵀX + λI)⁻¹, on the binary matrix."""
    x = _input(matrix, "binary")
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    return lambda rows: x[rows] @ b


def fit_popularity(matrix) -> Scorer:
    counts = np.asarray((matrix > 0).sum(axis=0), dtype=np.float64).ravel()
    return lambda rows: np.tile(counts, (len(rows), 1))


def _grid(**axes) -> tuple[dict, ...]:
    return tuple(dict(zip(axes, values)) for values in itertools.product(*axes.values()))


PEERS = (
    Peer(
        "implicit ALS",
        fit_als,
        _grid(factors=(32, 128), regularization=(1.0, 10.0, 30.0), alpha=(1.0, 4.0, 16.0), weights=WEIGHTS),
    ),
    Peer("implicit BPR", fit_bpr, _grid(factors=(64, 128), learning_rate=(0.05, 0.1, 0.2))),
    Peer(
        "implicit cosine item-kNN", partial(fit_item_knn, CosineRecommender), _grid(K=KNN_K, weights=WEIGHTS)
    ),
    Peer("implicit BM25 item-kNN", partial(fit_item_knn, BM25Recommender), _grid(K=KNN_K, weights=WEIGHTS)),
    Peer("EASE (numpy)", fit_ease, _grid(lam=(1.0, 10.0, 50.0, 200.0, 1000.0, 5000.0))),
    Peer("popularity", fit_popularity, ({},)),
)


def score(
    scorer: Scorer, matrix: sparse.csr_matrix, relevant: dict, batch: int = 2048
) -> tuple[np.ndarray, dict]:
    """(learner rows, per-learner metrics@10) of the top 10 among the courses not in ``matrix``, as the report
    ranks."""
    rows = np.array(list(relevant), dtype=np.int64)
    k = min(10, matrix.shape[1])
    tops = []
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        scores = np.asarray(scorer(part), dtype=np.float64)
        scores[matrix[part].nonzero()] = -np.inf
        tops.append(top_k(scores, k))
    sets = [relevant[r] for r in rows]
    return rows, metrics_from_hits(hit_matrix(np.vstack(tops), sets), np.array([len(s) for s in sets]), (10,))


def run_peer(peer: Peer, split: Split) -> Result:
    """Grid on the validation carve, refit the winner on all of training, score it on test."""
    started = time.perf_counter()
    with threadpool_limits(1, "blas"):  # BLAS threads would oversubscribe the shared cores
        valid = [
            score(peer.fit(split.fit, **params), split.fit, split.valid)[1]["ndcg@10"].mean()
            for params in peer.grid
        ]
        best = int(np.argmax(valid))
        rows, per = score(peer.fit(split.train, **peer.grid[best]), split.train, split.test)
    choice = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in peer.grid[best].items()
    )
    return Result(
        peer.name,
        choice or "-",
        float(valid[best]),
        split.learner_ids[rows],
        per["ndcg@10"],
        per["recall@10"],
        time.perf_counter() - started,
    )


def seed0_data(home: Path, config: dict, refit_labels: bool = False) -> tuple:
    """(training, test relevance, training minus the carve, the carve) of the split ``evaluate_all`` scores
    its first seed on (same sample, split and validation carve); ``refit_labels``: the learner labels
    refitted on that split, as the report does (the level term reads them)."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        info = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM source_info").fetchall()}
        mem = isolated_copy(con, config["max_learners"])
    finally:
        con.close()
    scale = tuple(info["rating_scale"]) if info["rating_scale"] else None
    build_split(mem, SplitConfig(test_share=config["test_share"], seed=0))
    if refit_labels:
        refit_learner_labels(mem, scale)
    data = load_train_data(mem, scale)
    test = held_out(mem, data, "test", scale)
    fit_data, valid, _ = validation_data(mem, data, scale, 0.2, 0)
    mem.close()
    return data, test, fit_data, valid


def seed0_split(home: Path, config: dict) -> Split:
    """The split ``evaluate_all`` scores its first seed on, as bare matrices."""
    data, test, fit_data, valid = seed0_data(home, config)
    return Split(
        data.learner_ids, data.matrix, fit_data.matrix, sample_learners(valid, TUNING_LEARNERS), test
    )


def run_evaluate(name: str, flags: list[str], work: Path, reuse: bool) -> bool:
    """``coursepilot evaluate`` into WORK/name/out with home WORK/name/home; False (and the log's tail) on
    failure."""
    out, home = work / name / "out", work / name / "home"
    if reuse and (out / "report.json").exists():
        console.print(f"{name}: reusing {out / 'report.json'}")
        return True
    log = work / name / "evaluate.log"
    shutil.rmtree(out, ignore_errors=True)  # no stale per_learner.parquet from an earlier run
    out.mkdir(parents=True)  # `evaluate --home` does not create OUT itself
    cli = Path(sys.executable).with_name("coursepilot")
    command = [str(cli), "evaluate", *flags, "--out", str(out), "--home", str(home)]
    console.print(f"{name}: {' '.join(command)}")
    started = time.perf_counter()
    with log.open("w") as stream:
        code = subprocess.run(
            command, stdout=stream, stderr=subprocess.STDOUT, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        ).returncode
    if code:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        console.print(f"[red]{name}: coursepilot evaluate failed (exit {code}); end of {log}:[/]\n{tail}")
        return False
    console.print(f"{name}: evaluated in {time.perf_counter() - started:.0f} s")
    return True


def ours_seed0(out: Path) -> pd.DataFrame | None:
    """Our per-learner seed-0 nDCG@10 (learner_id index, one column per model), None before the report wrote
    it."""
    path = out / "per_learner.parquet"
    if not path.exists():
        return None
    frame = pd.read_parquet(path)
    frame["learner_id"] = frame["learner_id"].astype(str)
    return frame.pivot_table(index="learner_id", columns="model", values="ndcg@10", aggfunc="first")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def table_rows(results: list[Result], report: dict, seed0: pd.DataFrame | None) -> list[list[str]]:
    """Bare peers (best first), then our models from the report."""
    rows = [
        [
            r.name,
            "bare, seed 0",
            _fmt(r.ndcg.mean()),
            _fmt(r.recall.mean()),
            _fmt(r.ndcg.mean()),
            f"{r.choice} ({r.valid_ndcg:.4f})",
        ]
        for r in sorted(results, key=lambda r: -r.ndcg.mean())
    ]
    for name in (n for n in OURS if n in report["models"]):
        metrics = report["models"][name]
        at_seed0 = seed0[name].mean() if seed0 is not None and name in seed0 else None
        rows.append(
            [
                name,
                f"ours, mean of {metrics['seeds']} seeds",
                _fmt(metrics["ndcg@10"]),
                _fmt(metrics["recall@10"]),
                _fmt(at_seed0),
                "-",
            ]
        )
    return rows


def compare(best: Result, report: dict, seed0: pd.DataFrame | None) -> tuple[float, float, list[str]]:
    """(hybrid and best peer nDCG@10 for the ratio, lines on the ratio and the paired t-test)."""
    if seed0 is None or "hybrid" not in seed0:
        hybrid, peer = report["models"]["hybrid"]["ndcg@10"], float(best.ndcg.mean())
        return (
            hybrid,
            peer,
            [
                f"hybrid / best bare peer ({best.name}): {hybrid / peer:.3f} (hybrid: mean over seeds, "
                "peer: seed 0)",
                "no paired t-test: the report wrote no per_learner.parquet (older report code)",
            ],
        )
    joined = pd.DataFrame(
        {"peer": best.ndcg}, index=pd.Index(best.learner_ids.astype(str), name="learner_id")
    )
    joined = joined.join(seed0["hybrid"].rename("hybrid"), how="inner")
    hybrid, peer = float(joined["hybrid"].mean()), float(joined["peer"].mean())
    test = paired_ttest(joined["hybrid"], joined["peer"])
    lines = [
        f"hybrid / best bare peer ({best.name}), seed 0: {hybrid:.4f} / {peer:.4f} = {hybrid / peer:.3f}",
        f"paired t-test hybrid - {best.name} over {test['n']:,} test learners: mean diff "
        f"{test['mean_diff']:+.4f}, t {test['t']:.2f}, p {test['p']:.3g}, "
        f"95% CI [{test['ci_low']:+.4f}, {test['ci_high']:+.4f}], d {test['cohens_d']:.3f}",
    ]
    if len(joined) != len(best.learner_ids):
        lines.append(
            f"warning: only {len(joined):,} of {len(best.learner_ids):,} test learners joined on learner_id"
        )
    return hybrid, peer, lines


def _goal(name: str) -> str:
    return f"hybrid >= {MIN_RATIO.get(name, 1.0):.2f}x best bare peer"


def target(name: str, hybrid: float, best: float) -> list[str]:
    met = hybrid >= MIN_RATIO.get(name, 1.0) * best
    return [name, _goal(name), _fmt(hybrid), _fmt(best), f"{hybrid / best:.3f}", "MET" if met else "MISSED"]


def bench(name: str, work: Path) -> tuple[str, list[str]]:
    """Peers on the seed-0 split of one evaluated dataset: (Markdown section, target row)."""
    out, home = work / name / "out", work / name / "home"
    report = json.loads((out / "report.json").read_text())
    split = seed0_split(home, report["config"])
    expected = report["config"]["test_learners_per_seed"][0]
    if len(split.test) != expected:
        console.print(
            f"[red]{name}: rebuilt split has {len(split.test):,} test learners, the report {expected:,}[/]"
        )
    results = []
    for peer in PEERS:
        results.append(run_peer(peer, split))
        r = results[-1]
        console.print(
            f"{name}: {r.name}: validation winner {r.choice} (nDCG@10 {r.valid_ndcg:.4f}), "
            f"test nDCG@10 {r.ndcg.mean():.4f}, {len(peer.grid)} fits + refit in {r.seconds:.1f} s"
        )
    seed0 = ours_seed0(out)
    best = max(results, key=lambda r: r.ndcg.mean())
    columns = ["model", "trained", "nDCG@10", "recall@10", "nDCG@10 seed 0", "validation choice (nDCG@10)"]
    rows = table_rows(results, report, seed0)
    hybrid, peer, lines = compare(best, report, seed0)
    title = (
        f"{name}: {split.train.shape[0]:,} learners x {split.train.shape[1]:,} courses, "
        f"{len(split.test):,} test learners (seed 0)"
    )
    print_table(title, columns, rows)
    for line in lines:
        console.print(line)
    section = "\n".join(
        [f"### {title}", "", markdown_table(columns, rows), "", *[f"- {line}" for line in lines], ""]
    )
    return section, target(name, hybrid, peer)


def sources(names: list[str]) -> dict[str, list[str]]:
    """``coursepilot evaluate`` source flags of each dataset asked for that is present (the others are
    reported)."""
    real, missing = interaction_datasets()
    flags = {}
    for name in names:
        if name in SYNTHETIC:
            flags[name] = ["--format", "synthetic", "--size", name]
        elif name in real:
            flags[name] = ["--format", real[name][0], "--data", str(real[name][1])]
        else:
            console.print(f"[yellow]{name}: skipped[/] ({missing[name]})")
    return flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=["mars", "oulad", "ibm", *SYNTHETIC],
        default=["mars", "oulad", "ibm", "S"],
        help="datasets to evaluate (default: the real ones and S)",
    )
    parser.add_argument(
        "--work", type=Path, help="where each dataset's OUT and HOME go (default: a new temp dir)"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="skip `coursepilot evaluate` where WORK/<dataset>/out already holds a report.json",
    )
    parser.add_argument(
        "--markdown", type=Path, help="also write the tables and targets as Markdown to this file"
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_quality-"))
    console.print(f"work dir: {work}")

    sections, targets = [], []
    for name, flags in sources(args.datasets).items():
        if not run_evaluate(name, flags, work, args.reuse):
            targets.append([name, _goal(name), "-", "-", "-", "NOT MEASURED (evaluate failed)"])
            continue
        section, row = bench(name, work)
        sections.append(section)
        targets.append(row)
    columns = ["dataset", "target", "hybrid nDCG@10", "best bare nDCG@10", "ratio", "status"]
    print_table("Targets", columns, targets)
    if args.markdown:
        args.markdown.write_text(
            "\n".join([*sections, "### Targets", "", markdown_table(columns, targets), ""])
        )
        console.print(f"Markdown written to {args.markdown}")


if __name__ == "__main__":
    main()
