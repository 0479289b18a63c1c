"""Fusion by measurement: the shipped weight search against LambdaRank over the same component scores.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_fusion.py [--datasets mars oulad S] [--work DIR]
       [--candidates N] [--markdown FILE]

Per dataset: ``coursepilot evaluate`` as bench_quality runs it (an existing WORK/<dataset>/out/report.json is
reused), then the report's seed-0 split rebuilt from the home's warehouse as ``evaluate_all`` builds it
(learner labels refitted on the split). Components: ``tune_models`` on training minus the validation carve.

- Validation: the carve's learners are split (seed 0) into halves A and B. The weight search
  (``tune_fusion``) and LambdaRank learn on A; each is scored by nDCG@10 on every learner of B, as is
  each component alone. "best single" is the component with the highest B score.
- Test: the weight search on the whole carve (``fusion_tuning``, what the report ships) and LambdaRank
  trained on the whole carve, both over components fitted on training minus the carve, then applied to
  the components refitted on all of training with the tuned settings; scored on the seed-0 test learners
  with a paired t-test over them (LambdaRank - weight search).

LambdaRank: per learner, the candidates are the union of each component's top N unseen courses; features
per (learner, course) are each component's per-learner min-max score over all courses (as the fusion
blends them), plus, in the "+ ranks" variant, its rank among the learner's unseen courses; label 1 if
held out. ``LGBMRanker(objective="lambdarank")`` early-stops on nDCG@10 of a seeded 20% of its training
learners. Non-candidates rank below every candidate. Candidate recall: the share of held-out (learner,
course) pairs inside the candidates. The variant used on test is the one with the higher B score.
Metrics are the project's (``hit_matrix``, ``metrics_from_hits``); a learner whose held-out courses are
not candidates scores 0.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightgbm
import numpy as np
from bench_quality import ours_seed0, run_evaluate, seed0_data, sources
from threadpoolctl import threadpool_limits

from common import console, markdown_table, print_table
from coursepilot.evaluation.metrics import hit_matrix, metrics_from_hits
from coursepilot.evaluation.significance import paired_ttest
from coursepilot.models.base import Recommender, TrainData
from coursepilot.models.catalogue import SPECS, build, fitted_fusion, fusion_tuning, tune_models
from coursepilot.models.fusion import Fusion, tune_fusion
from coursepilot.ranking import minmax_rows, top_k

STOP_SHARE = 0.2  # share of the ranker's training learners held for early stopping
VARIANTS = {"LambdaRank (scores)": False, "LambdaRank (scores + ranks)": True}


@dataclass
class Ranked:
    """Per-learner metrics@10 of one method on one set of learners (rows in the order they were scored)."""

    ndcg: np.ndarray
    recall: np.ndarray


def metrics(top: np.ndarray, relevant: dict, rows: np.ndarray) -> Ranked:
    sets = [relevant[int(r)] for r in rows]
    per = metrics_from_hits(hit_matrix(top, sets), np.array([len(s) for s in sets]), (10,))
    return Ranked(per["ndcg@10"], per["recall@10"])


def recommend(model: Recommender, relevant: dict, rows: np.ndarray) -> Ranked:
    return metrics(model.recommend(rows, 10), relevant, rows)


@dataclass
class Candidates:
    """The candidate (learner, course) cells of ``rows`` and their features, learner by learner."""

    rows: np.ndarray
    mask: np.ndarray  # (learners, courses) bool
    features: np.ndarray  # (candidates, components x 2): min-max scores, then ranks
    labels: np.ndarray  # (candidates,) 1 if held out
    recall: float  # share of held-out pairs inside the candidates

    def part(self, keep: np.ndarray, ranks: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features, labels, group sizes) of the learners where ``keep``."""
        cells = keep[np.nonzero(self.mask)[0]]
        width = self.features.shape[1] if ranks else self.features.shape[1] // 2
        return self.features[cells, :width], self.labels[cells], self.mask[keep].sum(axis=1)


def candidates(components: dict[str, Recommender], data: TrainData, relevant: dict, n: int) -> Candidates:
    rows = np.array(sorted(relevant), dtype=np.int64)
    seen = data.matrix[rows].toarray() > 0
    mask = np.zeros(seen.shape, dtype=bool)
    scores, ranks = [], []
    for model in components.values():
        score = minmax_rows(np.asarray(model.score(rows), dtype=np.float32))
        unseen = np.where(seen, -np.inf, score)
        mask[np.arange(len(rows))[:, None], top_k(unseen, min(n, seen.shape[1]))] = True
        scores.append(score)
        ranks.append(np.argsort(np.argsort(-unseen, axis=1, kind="stable"), axis=1).astype(np.float32))
    mask &= ~seen
    held = np.zeros(seen.shape, dtype=bool)
    for i, r in enumerate(rows):
        held[i, list(relevant[int(r)])] = True
    features = np.column_stack([s[mask] for s in scores] + [r[mask] for r in ranks])
    return Candidates(rows, mask, features, held[mask].astype(np.int32), (held & mask).sum() / held.sum())


def train_ranker(cands: Candidates, ranks: bool, seed: int = 0) -> lightgbm.LGBMRanker:
    """LambdaRank on the learners with a held-out candidate; a seeded ``STOP_SHARE`` of them early-stops."""
    positive = np.bincount(np.nonzero(cands.mask)[0], weights=cands.labels, minlength=len(cands.rows)) > 0
    stop = np.random.default_rng(seed).random(len(cands.rows)) < STOP_SHARE
    x, y, group = cands.part(positive & ~stop, ranks)
    xs, ys, gs = cands.part(positive & stop, ranks)
    ranker = lightgbm.LGBMRanker(
        objective="lambdarank",
        n_estimators=1000,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=20,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbose=-1,
    )
    ranker.fit(
        x,
        y,
        group=group,
        eval_X=(xs,),
        eval_y=(ys,),
        eval_group=[gs],
        eval_at=[10],
        callbacks=[lightgbm.early_stopping(50, verbose=False)],
    )
    return ranker


def rank_candidates(ranker: lightgbm.LGBMRanker, cands: Candidates, relevant: dict, ranks: bool) -> Ranked:
    x, _, _ = cands.part(np.ones(len(cands.rows), dtype=bool), ranks)
    scores = np.full(cands.mask.shape, -np.inf)
    scores[cands.mask] = ranker.predict(x)
    return metrics(top_k(scores, min(10, scores.shape[1])), relevant, cands.rows)


def timed(fn, *args):
    started = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - started


def bench(name: str, work: Path, n_candidates: int) -> str:
    """Weight search against LambdaRank on one evaluated dataset: its Markdown section."""
    out, home = work / name / "out", work / name / "home"
    report = json.loads((out / "report.json").read_text())
    data, test, fit_data, valid = seed0_data(home, report["config"], refit_labels=True)
    trained, tune_s = timed(lambda: tune_models(fit_data, valid, log=None))
    fit_data, valid = trained.fit_data, trained.valid  # the tuning population (re-keyed above its size)
    components = {m: trained.fitted[m] for m in trained.fitted if SPECS[m].fusion}
    console.print(f"{name}: {len(components)} components tuned and fitted in {tune_s:.0f} s")

    keys = np.random.default_rng(0).permutation(np.array(sorted(valid)))
    half_a = {int(r): valid[int(r)] for r in keys[: len(keys) // 2]}
    half_b = {int(r): valid[int(r)] for r in keys[len(keys) // 2 :]}
    rows_b = np.array(sorted(half_b), dtype=np.int64)

    # the test side: every component refitted on all of training with its tuned settings
    full = {m: build(m, trained.params.get(m)).fit(data) for m in components}
    rows_t = np.array(sorted(test), dtype=np.int64)  # the order ``candidates`` scores them in (paired tests)
    results: dict[str, dict] = {
        m: {"valid": recommend(components[m], half_b, rows_b), "test": recommend(full[m], test, rows_t)}
        for m in components
    }
    single = max(components, key=lambda m: results[m]["valid"].ndcg.mean())

    on_a, a_s = timed(tune_fusion, components, fit_data, half_a)
    shipped, full_s = timed(fusion_tuning, trained)
    results["weight search"] = {
        "valid": recommend(Fusion(components, on_a.weights).fit(fit_data, fit_parts=False), half_b, rows_b),
        "test": recommend(fitted_fusion(data, trained.params, shipped.weights, full), test, rows_t),
        "seconds": (a_s, full_s),
    }

    # training features are part of the ranker's fit time; the scored sides' are not
    cands_a, feat_a = timed(candidates, components, fit_data, half_a, n_candidates)
    cands_v, feat_v = timed(candidates, components, fit_data, valid, n_candidates)
    cands_b = candidates(components, fit_data, half_b, n_candidates)
    cands_t = candidates(full, data, test, n_candidates)
    for label, ranks in VARIANTS.items():
        ranker_a, s_a = timed(train_ranker, cands_a, ranks)
        ranker_v, s_v = timed(train_ranker, cands_v, ranks)
        results[label] = {
            "valid": rank_candidates(ranker_a, cands_b, half_b, ranks),
            "test": rank_candidates(ranker_v, cands_t, test, ranks),
            "seconds": (s_a + feat_a, s_v + feat_v),
            "trees": (ranker_a.best_iteration_, ranker_v.best_iteration_),
        }
    chosen = max(VARIANTS, key=lambda label: results[label]["valid"].ndcg.mean())

    def row(method: str, result: dict) -> list[str]:
        seconds = result.get("seconds")
        trees = result.get("trees")
        return [
            method,
            f"{result['valid'].ndcg.mean():.4f}",
            f"{result['test'].ndcg.mean():.4f}",
            f"{result['test'].recall.mean():.4f}",
            "-" if seconds is None else f"{seconds[0]:.1f} / {seconds[1]:.1f}",
            "-" if trees is None else f"{trees[0]} / {trees[1]}",
        ]

    methods = ["weight search", *VARIANTS]
    rows = [row(m + (" (chosen on B)" if m == chosen else ""), results[m]) for m in methods]
    rows.append(row(f"best single on B: {single}", results[single]))
    rows += [row(m, results[m]) for m in sorted(components, key=lambda m: -results[m]["valid"].ndcg.mean())]
    columns = ["method", "valid-B nDCG@10", "test nDCG@10", "test recall@10", "fit s (A / carve)", "trees"]

    lines = []
    for side, rows_of in (("valid-B", rows_b), ("test", rows_t)):
        key = "valid" if side == "valid-B" else "test"
        t = paired_ttest(results[chosen][key].ndcg, results["weight search"][key].ndcg)
        lines.append(
            f"paired t-test {side}, {chosen} - weight search, nDCG@10 over {t['n']:,} learners: "
            f"mean diff {t['mean_diff']:+.4f}, t {t['t']:.2f}, p {t['p']:.3g}, "
            f"95% CI [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}], d {t['cohens_d']:.3f}"
        )
    weights = report["validation"]["fusion"]["weights"]
    ours = ours_seed0(out)
    reported = f"{ours['hybrid'].mean():.4f}" if ours is not None and "hybrid" in ours else "-"
    lines += [
        f"candidates: union of each component's top {n_candidates} unseen courses; mean per learner "
        f"{cands_b.mask.sum(1).mean():.0f} (B) / {cands_t.mask.sum(1).mean():.0f} (test) of "
        f"{data.shape[1]:,} courses; candidate recall {cands_b.recall:.3f} (B), {cands_v.recall:.3f} "
        f"(carve), {cands_t.recall:.3f} (test)",
        f"validation carve: {len(valid):,} learners (A {len(half_a):,}, B {len(half_b):,}); components "
        f"tuned in {tune_s:.0f} s; weights on A {fmt_weights(on_a.weights)}; on the carve "
        f"{fmt_weights(shipped.weights)}",
        f"check against the report: its weights {fmt_weights(weights)} "
        f"({'same' if weights == shipped.weights else 'DIFFERENT'}); its seed-0 hybrid test nDCG@10 "
        f"{reported}, here {results['weight search']['test'].ndcg.mean():.4f}",
    ]
    title = (
        f"{name}: {data.shape[0]:,} learners x {data.shape[1]:,} courses, {len(rows_t):,} test learners "
        "(seed 0)"
    )
    print_table(title, columns, rows)
    for line in lines:
        console.print(line)
    return "\n".join([f"### {title}", "", markdown_table(columns, rows), "", *[f"- {x}" for x in lines], ""])


def fmt_weights(weights: dict) -> str:
    return ", ".join(f"{m} {w:g}" for m, w in sorted(weights.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=["mars", "oulad", "ibm", "S", "M"],
        default=["mars", "oulad", "S"],
        help="datasets to compare on (default: mars oulad S; absent real datasets are skipped)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        help="each dataset's OUT and HOME go to WORK/<dataset>/{out,home}; an evaluated one already there "
        "is reused (default: a new temp dir)",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=50,
        metavar="N",
        help="LambdaRank's candidates: the union of each component's top N unseen courses (default 50)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        help="also write the tables as Markdown to this file (rewritten after each dataset)",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_fusion-"))
    console.print(f"work dir: {work}; lightgbm {lightgbm.__version__}")
    sections = []
    for name, flags in sources(args.datasets).items():
        if not run_evaluate(name, flags, work, reuse=True):
            continue
        started = time.perf_counter()
        with threadpool_limits(1, "blas"):  # BLAS threads would oversubscribe the shared cores
            sections.append(bench(name, work, args.candidates))
        seconds = time.perf_counter() - started
        console.print(f"{name}: compared in {seconds:.0f} s")
        sections[-1] += f"- wall time of the comparison (evaluate excluded): {seconds:.0f} s\n"
        if args.markdown:
            header = f"lightgbm {lightgbm.__version__}, candidates: top {args.candidates} per component\n\n"
            args.markdown.write_text(header + "\n".join(sections))
    if args.markdown:
        console.print(f"Markdown written to {args.markdown}")


if __name__ == "__main__":
    main()
