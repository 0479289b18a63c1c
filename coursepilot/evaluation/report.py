"""The evaluation report: every model on the same splits, cold start, peers, significance, plots.

Protocol (docs/evaluation.md): for each seed, the split is rebuilt with that seed on an in-memory
copy of the warehouse (the pipeline's own tables are never touched; above ``max_learners`` learners
the copy holds a seeded sample of that many, the same for every seed); every model is trained on
``train``; every setting (each model's, the fusion's weights, equation (6)'s alpha and level weight) is
searched on the first seed's validation carve of ``train`` and kept for the other seeds, which only refit on
their own ``train``; all are scored on ``test``.
The table reports the mean over seeds and the standard deviation (``<metric>@<k>_std``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ..embeddings import embed_texts
from ..features import learner_features
from ..labels import LearnerLabelConfig, label_learners, truth_labels
from ..models.base import Recommender, TrainData, load_train_data, recommend_all
from ..models.catalogue import (
    SPECS,
    TrainedSet,
    equation6_tuning,
    fit_models,
    fitted_fusion,
    fusion_tuning,
    side_by_side,
    tune_models,
)
from ..models.cold_start import blend, popularity, profile_texts, tune_blend
from ..models.hybrid import Hybrid, validation_data
from ..plots import figure, save_png
from ..ranking import top_k
from ..sampling import POPULATION_LEARNERS, sample_rows
from ..splits import SplitConfig, build_split, coded_interactions
from .calibration import calibrated_errors
from .metrics import hit_matrix, metrics_from_hits
from .protocol import held_out
from .significance import bootstrap_ci, paired_ttest

COPIED = (
    "learners",
    "courses",
    "interactions",
    "course_embeddings",
    "tfidf_course_vectors",
    "course_labels",
    "learner_labels",
    "source_info",
)
OPTIONAL = ("truth_learners",)  # copied where the source has them
# copied for the sampled learners only
PER_LEARNER = ("learners", "interactions", "learner_labels", "truth_learners")
# the headline metrics, with a bootstrap 95% interval over the seed-0 test learners
CI_METRICS = (
    "precision@5",
    "recall@5",
    "f1@5",
    "precision@10",
    "recall@10",
    "f1@10",
    "ndcg@5",
    "ndcg@10",
    "map@10",
    "hit@10",
    "mrr",
)
# Table 3: CF, CBF and the hybrids
CALIBRATED = ("als", "content_minilm", "content_tfidf", "hybrid_tfidf", "hybrid")
BASELINES = (
    "popularity",
    "als",
    "ease",
    "item_knn",
    "peer_group",
    "content_minilm",
    "user_knn",
    "hybrid_eq6",
)
DEFINITIONS = {
    "precision@k": "|top-k ∩ relevant| / k",
    "recall@k": "|top-k ∩ relevant| / |relevant|",
    "f1@k": "harmonic mean of precision@k and recall@k",
    "hit@k": "1 if any relevant course is in the top k",
    "ndcg@k": "DCG / ideal DCG with binary gains 1 / log2(rank + 1)",
    "map@k": "mean over hits of precision at the hit's rank, divided by min(|relevant|, k)",
    "mrr": "1 / rank of the first relevant course in the top 10 (0 without one)",
    "accuracy@k": "(TP + TN) / candidates when the top k are called relevant and the other candidates not "
    "(the second paper's accuracy, made precise for ranking)",
    "coverage": "share of the catalogue that appears in anybody's top 10",
    "relevant": "the learner's test courses; candidates: every course not taken in training",
}


@dataclass(frozen=True)
class ReportConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    ks: tuple[int, ...] = (5, 10)
    test_share: float = 0.2
    neural_seeds: int = 1  # the neural hybrid is slow: evaluated on the first N seeds only
    neural_params: dict = field(default_factory=dict)
    neural_epochs: int | None = (
        None  # None: early-stopped on each seed's validation carve; else trained this many epochs
    )
    max_learners: int = POPULATION_LEARNERS  # 0: every learner


def isolated_copy(
    con: duckdb.DuckDBPyConnection, max_learners: int = 0, seed: int = 0
) -> duckdb.DuckDBPyConnection:
    """An in-memory database holding the tables the evaluation reads (a seeded sample of learners above
    ``max_learners``)."""
    memory = duckdb.connect()
    memory.execute("SET enable_progress_bar = false")
    ids = [r[0] for r in con.execute("SELECT learner_id FROM learners ORDER BY 1").fetchall()]
    rows = sample_rows(len(ids), max_learners, seed) if max_learners else None
    if rows is not None:
        con.register("sampled_learners", pa.table({"learner_id": pa.array([ids[r] for r in rows])}))
    present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    for table in (*COPIED, *(t for t in OPTIONAL if t in present)):
        kept = (
            " WHERE learner_id IN (SELECT learner_id FROM sampled_learners)"
            if rows is not None and table in PER_LEARNER
            else ""
        )
        memory.register("incoming", con.execute(f"SELECT * FROM {table}{kept}").to_arrow_table())
        memory.execute(f"CREATE TABLE {table} AS SELECT * FROM incoming")
        memory.unregister("incoming")
    if rows is not None:
        con.unregister("sampled_learners")
    return memory


def _models(
    config: ReportConfig,
    data: TrainData,
    fit_data: TrainData,
    valid: dict,
    with_neural: bool,
    log=print,
) -> tuple[dict[str, Recommender], dict, dict[str, Recommender]]:
    """Every model of the catalogue tuned on ``valid`` and refitted on ``data``, the fusion (``hybrid``),
    the paper's equation (6) hybrids and the neural hybrid; with what validation said about them (the
    settings later seeds keep); and the ``CALIBRATED`` models as fitted on ``fit_data`` (training minus the
    carve)."""
    trained = tune_models(fit_data, valid, log=log)
    fusion, choices = side_by_side(lambda: fusion_tuning(trained), lambda: _equation6_choices(trained))
    models = _fitted(data, trained.params, fusion.weights, choices)
    on_fit = {
        **trained.fitted,
        **_equation6(choices, trained.fit_data, trained.fitted),
        "hybrid": fitted_fusion(trained.fit_data, trained.params, fusion.weights, trained.fitted),
    }
    on_fit = {name: model for name, model in on_fit.items() if name in CALIBRATED}
    notes = {"skipped": trained.skipped}
    if with_neural:
        models["neural_hybrid"] = _neural(config, trained.params, data, fit_data, valid, models["als"], notes)
    validation = {**trained.valid_ndcg(), "hybrid": fusion.valid_ndcg}
    below = {
        m: v for m, v in validation.items() if m in models and v < validation.get("popularity", 0.0) - 1e-9
    }
    notes["below_popularity_on_validation"] = {
        m: f"validation nDCG@10 {v:.4f} < popularity's {validation['popularity']:.4f}"
        for m, v in below.items()
    }
    return (
        models,
        {
            "validation_ndcg@10": validation,
            "fusion": {
                "weights": fusion.weights,
                "valid_ndcg@10": fusion.valid_ndcg,
                "components_alone": fusion.singles,
                "steps": fusion.steps,
            },
            "params": trained.params,
            "equation6": choices,
            "notes": notes,
        },
        on_fit,
    )


def _refitted(
    config: ReportConfig,
    settings: dict,
    data: TrainData,
    carve,
    with_neural: bool,
) -> dict[str, Recommender]:
    """The seeds after the first: every model with the first seed's ``settings`` (``_models``' validation
    dict), fitted on this seed's ``data`` only; ``carve()`` gives (fit data, validation) when the neural
    hybrid early-stops."""
    params = settings["params"]
    models = _fitted(data, params, settings["fusion"]["weights"], settings["equation6"])
    if with_neural:
        fit_data, valid = carve() if not config.neural_epochs else (None, None)
        models["neural_hybrid"] = _neural(config, params, data, fit_data, valid, models["als"], {})
    return models


def _fitted(data: TrainData, params: dict, weights: dict, choices: dict) -> dict[str, Recommender]:
    """Every report model with these settings fitted on ``data``: the catalogue's, the fusion (``hybrid``)
    and the equation (6) hybrids."""
    models = fit_models(data, {name: p for name, p in params.items() if SPECS[name].report})
    models["hybrid"] = fitted_fusion(data, params, weights, models)
    models.update(_equation6(choices, data, models))
    return models


def _neural(config: ReportConfig, params: dict, data, fit_data, valid, als, notes: dict) -> Recommender:
    """The neural hybrid on ``data`` over the fitted ``als``: for the epochs the pipeline's early stopping
    chose, as validation chose the ALS settings, or early-stopped on ``valid``; a fallback is noted."""
    from ..models.neural import NeuralHybrid

    als_params = {k: v for k, v in params["als"].items() if k != "seed"}
    epochs = {"max_epochs": config.neural_epochs} if config.neural_epochs else {}
    neural = NeuralHybrid(**{**config.neural_params, **epochs}, als_params=als_params)
    # fixed epochs: trained on all of data; else early-stopped on valid
    model = neural.fit(data, als=als) if epochs else neural.fit(data, fit_data, valid, als=als)
    if getattr(neural, "fell_back", False):
        notes["neural_hybrid"] = neural.fallback_reason
    return model


def _equation6_choices(trained: TrainedSet) -> dict[str, list]:
    """The first paper's equation (6) as written, its (content, alpha, level weight) chosen on validation:
    tuned ALS as CF with MiniLM (``hybrid_eq6``) or TF-IDF (``hybrid_tfidf``, the paper's hybrid without
    GenAI), and ``hybrid_eq6_level`` with the level term."""
    out = {}
    for content, plain, with_level in (
        ("minilm", "hybrid_eq6", "hybrid_eq6_level"),
        ("tfidf", "hybrid_tfidf", None),
    ):
        tuning = equation6_tuning(trained, content)
        if tuning is None:
            continue
        for name, level in ((plain, False), (with_level, True)):
            if name:
                out[name] = [content, *tuning.choice(level)]
    return out


def _equation6(choices: dict[str, list], data: TrainData, fitted: dict[str, Recommender]) -> dict:
    """The equation (6) hybrids of ``choices`` over ``fitted`` ALS and content (fitted on ``data``)."""
    return {
        name: Hybrid(fitted["als"], fitted[f"content_{content}"], alpha, weight, name).fit(
            data, fit_parts=False
        )
        for name, (content, alpha, weight) in choices.items()
    }


def _scores(
    models: dict[str, Recommender], data: TrainData, relevant: dict, ks
) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    """{model: (per-learner metrics, top 10)} over the ``relevant`` learners; the models are scored together,
    so the fusion's and equation (6)'s parts are scored once."""
    rows = np.array(list(relevant), dtype=np.int64)
    sets = [relevant[r] for r in rows]
    n_relevant = np.array([len(s) for s in sets])
    candidates = data.shape[1] - np.diff(data.matrix.indptr)[rows]
    return {
        name: (metrics_from_hits(hit_matrix(top, sets), n_relevant, (*ks, *range(1, 11)), candidates), top)
        for name, top in recommend_all(models, rows, 10).items()
    }


def _intervals(per: dict[str, dict[str, np.ndarray]], seed: int) -> dict[str, dict[str, list[float]]]:
    """{model: {metric: [low, high]}}: 95% bootstrap intervals of ``CI_METRICS`` from per-learner values,
    every model and metric from one set of resamples of the learners."""
    columns = [(name, metric) for name in per for metric in CI_METRICS]
    low, high = bootstrap_ci(np.column_stack([per[name][metric] for name, metric in columns]), seed=seed)
    out: dict[str, dict[str, list[float]]] = {}
    for (name, metric), a, b in zip(columns, low, high):
        out.setdefault(name, {})[metric] = [float(a), float(b)]
    return out


def _cold_learners(
    mem, data: TrainData, fit_data: TrainData, valid: dict, embed: Callable, k: int = 5
) -> dict[str, dict[str, float]]:
    """Learners whose interactions are all hidden, known only by their profile text (the blend tuned on
    validation)."""
    texts = profile_texts(mem)
    if texts.empty:
        return {}
    frame = mem.execute("SELECT learner_id, course_id FROM split WHERE split = 'cold_learner'").df()
    frame = frame[frame["learner_id"].astype(str).isin(texts.index)]
    if frame.empty:
        return {}
    per = frame.groupby("learner_id")["course_id"].apply(set)
    relevant = [set(data.course_index(list(c))) - {-1} for c in per]
    weight, _ = tune_blend(mem, fit_data, valid, embed)
    counts = popularity(data)
    scores = {
        "profile_minilm": blend(
            embed(list(texts.loc[per.index.astype(str)])), data.course_vectors, counts, weight
        ),
        "popularity": np.tile(counts, (len(per), 1)),
    }
    table = _cold_table(scores, relevant, k)
    table["profile_minilm"]["popularity_weight"] = weight
    return table


def _cold_courses(
    mem, data: TrainData, models: dict[str, Recommender], k: int = 5
) -> dict[str, dict[str, float]]:
    """Courses removed from training: each learner who took some ranks the cold courses only."""
    frame = mem.execute("SELECT learner_id, course_id FROM split WHERE split = 'cold_course'").df()
    cold = np.unique(data.course_index(frame["course_id"].unique()))
    cold = cold[cold >= 0]
    rows = data.learner_index(frame["learner_id"])
    frame = frame.assign(row=rows, col=data.course_index(frame["course_id"]))
    frame = frame[(frame["row"] >= 0) & (np.diff(data.matrix.indptr)[np.maximum(frame["row"], 0)] > 0)]
    if len(cold) <= k or frame.empty:
        return {}
    per = frame.groupby("row")["col"].apply(set)
    learners = per.index.to_numpy()
    relevant = [{int(np.searchsorted(cold, c)) for c in cols} for cols in per]
    scores = {
        name: models[name].score(learners)[:, cold]
        for name in ("content_minilm", "content_tfidf", "popularity")
        if name in models
    }
    scores["hybrid"] = models["hybrid"].score(learners)[:, cold]
    return _cold_table(scores, relevant, k)


def _cold_table(scores: dict[str, np.ndarray], relevant: list[set], k: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, matrix in scores.items():
        top = top_k(np.asarray(matrix, dtype=float), k)
        per = metrics_from_hits(hit_matrix(top, relevant), np.array([len(r) for r in relevant]), (k,))
        out[name] = {key: float(np.mean(per[key])) for key in (f"precision@{k}", f"recall@{k}", f"f1@{k}")}
    return out


def evaluate_all(
    con: duckdb.DuckDBPyConnection, config: ReportConfig, log=print, embed: Callable = embed_texts
) -> dict:
    """Run the protocol over ``config.seeds`` and return the report as a dict (see ``write_report``);
    ``embed`` encodes the cold-start learners' profile texts (the pipeline passes its cached encoder)."""
    info = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM source_info").fetchall()}
    scale = tuple(info["rating_scale"]) if info["rating_scale"] else None
    mem = isolated_copy(con, config.max_learners)
    per_seed, learners_per_seed, cold = [], [], {}
    significance = {}
    # every setting: searched on the first seed's validation carve, kept for the others
    settings = None
    for i, seed in enumerate(config.seeds):
        build_split(mem, SplitConfig(test_share=config.test_share, seed=seed))
        labels_note = refit_learner_labels(mem, scale)
        data = load_train_data(mem, scale)
        relevant = held_out(mem, data, "test", scale)
        if not relevant:
            raise ValueError("no learner has test interactions: this source has nothing to rank")
        if settings is None:
            fit_data, valid, carve = validation_data(mem, data, scale, 0.2, seed)
            models, settings, on_fit = _models(
                config, data, fit_data, valid, config.neural_seeds > 0, log=log
            )
            settings["carve"] = carve.describe()
        else:
            models = _refitted(
                config,
                settings,
                data,
                lambda: validation_data(mem, data, scale, 0.2, seed)[:2],
                i < config.neural_seeds,
            )
        results, per_learner = {}, {}
        scored = _scores(models, data, relevant, config.ks)
        for name, (per, top) in scored.items():
            results[name] = {key: float(np.mean(v)) for key, v in per.items()}
            results[name]["coverage"] = float(len(np.unique(top)) / data.shape[1])
            per_learner[name] = per["ndcg@10"]
            log(f"seed {seed}: {name} nDCG@10 {results[name]['ndcg@10']:.4f}")
        intervals = (
            _intervals({name: per for name, (per, _) in scored.items()}, seed)
            if i == 0 and len(relevant) > 1
            else {}
        )
        per_seed.append(results)
        learners_per_seed.append(len(relevant))
        if i == 0:
            ratings = _rating_errors(mem, info, scale)
            if ratings:
                ratings.update(_calibrated_errors(mem, data, carve, on_fit, models, scale))
            significance = {
                "metric": "ndcg@10",
                "model": "hybrid",
                "seed": seed,
                "vs": {
                    b: paired_ttest(per_learner["hybrid"], per_learner[b])
                    for b in BASELINES
                    if b in per_learner
                },
            }
            ids = data.learner_ids[np.array(list(relevant), dtype=np.int64)].astype(str)
            learners_seed0 = pd.DataFrame(
                {
                    "learner_id": np.tile(ids, len(per_learner)),
                    "model": np.repeat(list(per_learner), len(ids)),
                    "ndcg@10": np.concatenate(list(per_learner.values())),
                }
            )
            validation, bootstrap = settings, intervals
            if labels_note:
                validation["notes"]["learner_labels"] = labels_note
            cold = {
                "learners": _cold_learners(mem, data, fit_data, valid, embed),
                "courses": _cold_courses(mem, data, models),
            }
    mem_learners = mem.execute("SELECT count(*) FROM learners").fetchone()[0]
    mem.close()
    names = list(per_seed[0])
    models_out = {}
    for name in names:
        runs = [r[name] for r in per_seed if name in r]
        models_out[name] = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
        models_out[name].update({f"{key}_std": float(np.std([r[key] for r in runs])) for key in runs[0]})
        models_out[name]["seeds"] = len(runs)
    return {
        "source": {"format": info["format"], "fingerprint": info["fingerprint"]},
        "config": {
            "seeds": list(config.seeds),
            "ks": list(config.ks),
            "test_share": config.test_share,
            "learners": mem_learners,
            "max_learners": config.max_learners,
            "neural_seeds": config.neural_seeds,
            "neural_epochs": config.neural_epochs,
            "test_learners_per_seed": learners_per_seed,
        },
        "definitions": DEFINITIONS,
        "models": models_out,
        "cold_start": cold,
        "significance": significance,
        "bootstrap_ci": {"seed": config.seeds[0], "confidence": 0.95, "models": bootstrap},
        "ratings": ratings,
        "validation": validation,
        "per_learner": learners_seed0,
    }


def refit_learner_labels(mem: duckdb.DuckDBPyConnection, scale) -> str | None:
    """The learner labels again from this seed's training split (features and classifiers as the pipeline's
    defaults), in place of the copied ones; the reason when no classifier could learn (neutral labels
    then)."""
    features = learner_features(mem, scale)
    result = label_learners(features, truth_labels(mem), LearnerLabelConfig())
    mem.register("refitted", result.labels)
    mem.execute("CREATE OR REPLACE TABLE learner_labels AS SELECT * FROM refitted")
    mem.unregister("refitted")
    if result.fallback:
        return (
            "no classifier could learn adaptive / non-adaptive labels from this source "
            f"({result.fallback}): every learner has p_adaptive 0.5 (the level term does not shift)"
        )
    return None


def _rating_errors(mem, info: dict, scale) -> dict[str, dict[str, float]]:
    """MAE and MSE of the rating models on the test ratings, where the source's ratings are explicit."""
    from ..models.base import split_frame
    from ..models.ratings import RatingModels, rating_errors

    columns = {c[0] for c in mem.execute("DESCRIBE interactions").fetchall()}
    if "rating" not in columns or not info.get("explicit_ratings", True) or scale is None:
        return {}
    test = split_frame(mem, ("test",)).dropna(subset=["rating"])
    if test.empty:
        return {}
    models = RatingModels(scale).fit(split_frame(mem, ("train",)))
    return {name: rating_errors(test["rating"], models.predict(name, test)) for name in models.NAMES}


def _calibrated_errors(
    mem, data: TrainData, carve, on_fit: dict[str, Recommender], models: dict[str, Recommender], scale
) -> dict[str, dict[str, float]]:
    """Table 3 for the ranking models: MAE and MSE of their scores mapped to the rating scale
    (``calibration``), the map fitted on the validation carve's ratings, named ``<model>_calibrated``."""

    def pairs(coded):
        rated = coded[coded["rating"].notna()]
        return rated["row"].to_numpy(), rated["col"].to_numpy(), rated["rating"].to_numpy(float)

    train = coded_interactions(mem, ("train",), data.learner_ids, data.course_ids)
    test = coded_interactions(mem, ("test",), data.learner_ids, data.course_ids)
    errors = calibrated_errors(on_fit, pairs(train[carve.held]), models, pairs(test), scale)
    return {f"{name}_calibrated": e for name, e in errors.items()}


def flat_keys(report: dict) -> dict[str, float]:
    """``models.<name>.<metric>@<k>`` style keys of every number in the report."""
    out = {}
    for section in ("models", "peers", "ratings"):
        for name, metrics in report.get(section, {}).items():
            out.update({f"{section}.{name}.{k}": v for k, v in metrics.items() if isinstance(v, float)})
    for group, models in report.get("cold_start", {}).items():
        for name, metrics in models.items():
            out.update({f"cold_start.{group}.{name}.{k}": v for k, v in metrics.items()})
    return out


# accuracy@k stays in report.json only: with hundreds of candidates and a few relevant courses it is near 1
# for every model (true negatives dominate) and tells no two models apart
TABLE_METRICS = (*CI_METRICS, "coverage")


def write_report(report: dict, out: Path) -> list[Path]:
    """report.json, report.md and PNG plots into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    per_learner = report.get("per_learner")
    report = {k: v for k, v in report.items() if k != "per_learner"}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float))
    files = [out / "report.json", out / "report.md"]
    if per_learner is not None:
        per_learner.to_parquet(out / "per_learner.parquet")
        files.append(out / "per_learner.parquet")
    models = pd.DataFrame(report["models"]).T
    lines = [
        f"# Evaluation report ({report['source']['format']}, seeds {report['config']['seeds']})",
        "",
        f"Learners: {report['config']['learners']:,} (a seeded sample above "
        f"{report['config']['max_learners']:,}; "
        f"0 means no sample). Test learners per seed: {report['config']['test_learners_per_seed']}. "
        "Mean over seeds; ± one standard deviation. accuracy@k is in report.json only: near 1 for every "
        "model, since true negatives dominate it.",
        "",
        "## Models",
        "",
        _md(models, TABLE_METRICS, std=True),
        "",
    ] + _validation_lines(report.get("validation", {}))
    for group in ("learners", "courses"):
        if report["cold_start"].get(group):
            lines += [
                f"## Cold-start {group}",
                "",
                _md(
                    pd.DataFrame(report["cold_start"][group]).T,
                    ("precision@5", "recall@5", "f1@5", "popularity_weight"),
                ),
                "",
            ]
    if report.get("peers"):
        lines += [
            "## Peers",
            "",
            _md(pd.DataFrame(report["peers"]).T, tuple(next(iter(report["peers"].values())))),
            "",
        ]
    if report.get("ratings"):
        lines += [
            "## Rating prediction (test ratings, seed 0)",
            "",
            "The first paper's Table 3. `<model>_calibrated`: a ranking model's score mapped to the rating "
            "scale by an isotonic regression fitted on the validation carve's ratings.",
            "",
            _md(pd.DataFrame(report["ratings"]).T, ("mae", "mse")),
            "",
        ]
    lines += _interval_lines(report.get("bootstrap_ci", {}))
    sig = report.get("significance", {})
    test_columns = ("mean_diff", "t", "df", "p", "ci_low", "ci_high", "cohens_d", "n")
    if sig:
        lines += [
            f"## Paired t-tests ({sig['model']} vs baselines, {sig['metric']}, seed {sig['seed']})",
            "",
            "The second paper's Table 1 for courses: CF only is `als` (and `ease`, `item_knn`), clustering "
            "only is `peer_group`.",
            "",
            _md(pd.DataFrame(sig["vs"]).T, test_columns),
            "",
        ]
    if sig.get("peers_vs"):
        lines += [
            "## Paired t-tests (hybrid_peers vs peer baselines, ndcg@10)",
            "",
            "Table 1 for peers: CF only is `cf_peers`, clustering only is `cluster_random` (peers drawn from "
            "the learner's cluster).",
            "",
            _md(pd.DataFrame(sig["peers_vs"]).T, test_columns),
            "",
        ]
    lines += ["## Definitions", ""] + [f"- **{k}**: {v}" for k, v in report["definitions"].items()]
    (out / "report.md").write_text("\n".join(lines) + "\n")

    fig, ax = figure(7, 4.5)
    for name, row in models.iterrows():
        ax.plot(
            range(1, 11), [row.get(f"ndcg@{k}", np.nan) for k in range(1, 11)], marker="o", ms=3, label=name
        )
    ax.set(xlabel="k", ylabel="nDCG@k", title="nDCG at k (mean over seeds)")
    ax.legend(fontsize=7, ncol=2)
    save_png(fig, out / "ndcg_at_k.png", dpi=90)
    files.append(out / "ndcg_at_k.png")
    cold = {f"{g}: {m}": v["f1@5"] for g, models_ in report["cold_start"].items() for m, v in models_.items()}
    if cold:
        fig, ax = figure(7, 3.5)
        ax.barh(list(cold), list(cold.values()))
        ax.set(xlabel="F1@5", title="Cold start")
        save_png(fig, out / "cold_start.png", dpi=90)
        files.append(out / "cold_start.png")
    return files


def _interval_lines(intervals: dict) -> list[str]:
    """report.md's bootstrap 95% intervals of the headline metrics (seed 0), as "low-high" per model."""
    if not intervals.get("models"):
        return []
    frame = pd.DataFrame(
        {
            name: {m: f"{a:.3f}-{b:.3f}" for m, (a, b) in metrics.items()}
            for name, metrics in intervals["models"].items()
        }
    ).T
    return [
        f"## Bootstrap {intervals['confidence']:.0%} intervals "
        f"(seed {intervals['seed']}, over test learners)",
        "",
        "1,000 resamples of the test learners, the same resamples for every model.",
        "",
        "| model | " + " | ".join(frame.columns) + " |",
        "|---|" + "---|" * len(frame.columns),
        *(f"| {name} | " + " | ".join(row) + " |" for name, row in frame.iterrows()),
        "",
    ]


def _validation_lines(validation: dict) -> list[str]:
    """report.md's account of the seed-0 tuning: the fusion's weights, each model on validation, and the
    notes."""
    if not validation:
        return []
    fusion = validation["fusion"]
    alone = pd.DataFrame({"alone (validation nDCG@10)": fusion["components_alone"]})
    alone["fusion weight"] = [fusion["weights"].get(m, 0.0) for m in alone.index]
    lines = [
        "## The shipped hybrid (seed 0)",
        "",
        "`hybrid` is the model the registry serves: a weighted sum of per-learner min-max normalised "
        "component scores, weights found on the validation carve of training (validation nDCG@10 "
        f"{fusion['valid_ndcg@10']:.4f}; the best component alone "
        f"{max(fusion['components_alone'].values()):.4f}).",
        "",
        _md(alone.sort_values("alone (validation nDCG@10)", ascending=False), tuple(alone.columns)),
        "",
        *([f"Validation carve: {validation['carve']}.", ""] if validation.get("carve") else []),
        "Tuned settings: " + "; ".join(f"{m} {p}" for m, p in validation["params"].items() if p),
        "",
    ]
    notes = validation["notes"]
    items = [f"- {m}: not trained ({why})" for m, why in notes.get("skipped", {}).items()]
    items += [f"- {m}: {why}" for m, why in notes.get("below_popularity_on_validation", {}).items()]
    items += [
        f"- {stage}: {notes[stage]}" for stage in ("neural_hybrid", "learner_labels") if notes.get(stage)
    ]
    return lines + (["## Notes", "", *items, ""] if items else [])


def _md(frame: pd.DataFrame, columns, std: bool = False) -> str:
    cols = [c for c in columns if c in frame.columns]
    table = pd.DataFrame(index=frame.index)
    for c in cols:
        values = frame[c].astype(float).round(4).astype(str)
        if std and f"{c}_std" in frame.columns:
            values = values + " ± " + frame[f"{c}_std"].astype(float).round(4).astype(str)
        table[c] = values
    return table.reset_index(names="model").to_markdown(index=False)
