"""Recommender stage: baselines, factor models, the tuned hybrid, and the registered serving model."""

from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from coursepilot import ingest, registry
from coursepilot.content import load_courses
from coursepilot.evaluation.protocol import held_out
from coursepilot.models.base import load_train_data, split_frame
from coursepilot.models.catalogue import (
    SPECS,
    build,
    fitted_fusion,
    fusion_and_equation6,
    tune_models,
    unusable,
)
from coursepilot.models.cold_start import tune_blend
from coursepilot.models.factors import WARM_ITERATIONS, Factorisation
from coursepilot.models.neural import NeuralHybrid, save_state
from coursepilot.models.prepared import prepare
from coursepilot.models.ratings import RatingModels, rating_errors
from coursepilot.models.simple import Content, Popularity, UserKNN
from coursepilot.models.store import ModelStore
from coursepilot.models.warm import FusionStarts
from coursepilot.sampling import POPULATION_LEARNERS, sample_rows
from coursepilot.splits import training_learners
from coursepilot.stored import (
    ALS,
    FACTORS,
    HYBRID,
    HYBRID_BUNDLE,
    HYBRID_EQ6,
    NEURAL_HYBRID,
    Equation6Choice,
    HybridChoice,
    fitted_als,
)
from coursepilot.training import train_and_track
from coursepilot.warehouse import columns, row_count
from resources import EmbedderResource, ProjectHomeResource, TrackingResource, WarehouseResource

from . import COMPARISON
from .courses import course_embeddings, course_labels, tfidf_course_vectors
from .learners import learner_labels
from .lineage import run_tags
from .metadata import markdown_table
from .split import split

GROUP = "recommenders"
DEPS = [split, course_embeddings, tfidf_course_vectors, course_labels, learner_labels]


def _context(con, max_learners: int = 0, seed: int = 0):
    """(rating scale, training data, test sets), of a seeded sample of at most ``max_learners`` learners when
    set."""
    scale = ingest.source_info(con)["rating_scale"]
    data = load_train_data(con, scale, max_learners, seed)
    return scale, data, held_out(con, data, "test", scale)


def _with_validation(context, warehouse: WarehouseResource, share: float, seed: int, max_learners: int = 0):
    """(data, test sets, the validation carve of its training rows, lineage tags), of a seeded sample of at
    most ``max_learners`` learners when that is set (only their rows are read)."""
    with warehouse.get_connection() as con:
        scale = ingest.source_info(con)["rating_scale"]
        data, relevant, validation = prepare(con, scale, share, seed, max_learners)
        _log_population(context, con, data)
        tags = run_tags(context, con)
    context.log.info(f"validation carve: {validation.carve.describe()}")
    return data, relevant, validation, tags


def _log_population(context, con, data) -> None:
    everyone = row_count(con, "learners")
    if data.shape[0] < everyone:
        context.log.info(
            f"comparison model: trained and scored on a seeded sample of {data.shape[0]:,} of {everyone:,} "
            "learners"
        )


def _metrics_table(results: dict[str, dict[str, float]]) -> MetadataValue:
    keys = ["precision@10", "recall@10", "ndcg@10", "map@10", "hit@10", "mrr"]
    frame = pd.DataFrame(
        [
            {"model": name, **{k: round(m.get(k, float("nan")), 4) for k in keys}}
            for name, m in results.items()
        ]
    )
    return markdown_table(frame)


class FactorSettings(Config):
    """The search grid is the model list's (coursepilot.models.catalogue): factors x regularization x alpha
    for ALS, the learning rate for BPR, tried on the validation carve; the best is refit on all of train."""

    validation_share: float = 0.2
    seed: int = 0
    retune: bool = True  # False (the nightly job): keep the settings the last tuning chose, fit once
    max_learners: int = (
        0  # 0: every learner; otherwise a seeded sample of at most this many (coursepilot.sampling)
    )


class BprSettings(FactorSettings):
    """BPR is a comparison model (unless the fusion weighs it): above ``max_learners`` it trains on a
    sample."""

    max_learners: int = POPULATION_LEARNERS


def _factor_asset(algorithm: str, settings_type, tags: dict | None = None):
    @asset(
        name=f"{algorithm}_model",
        group_name=GROUP,
        tags=tags,
        kinds={"implicit", "mlflow"},
        deps=DEPS,
        description=f"implicit {algorithm.upper()} on the confidence-weighted training matrix, tuned on a "
        "validation carve; factors under <home>/models.",
    )
    def factor_model(
        context: AssetExecutionContext,
        config: settings_type,
        warehouse: WarehouseResource,
        home: ProjectHomeResource,
        tracking: TrackingResource,
    ) -> MaterializeResult:
        data, relevant, (fit_data, valid, carve), tags = _with_validation(
            context, warehouse, config.validation_share, config.seed, config.max_learners
        )
        entry = FACTORS[algorithm]
        last = None if config.retune else home.models.last(entry)
        kept = {algorithm: last} if last is not None else {}
        # the validation fit starts where the last run's hybrid_model fit the same model on its carve
        starts, scored, carve_note = (
            FusionStarts.load(home.models).for_carve(fit_data, valid) if kept else ({}, valid, "retuned")
        )
        valid = scored if algorithm in starts else valid  # rows are left out only for a warm start
        tuned = tune_models(fit_data, valid, names=[algorithm], kept=kept, starts=starts).tuning[algorithm]
        context.log.info(
            f"validation nDCG@10 {tuned.valid_ndcg:.4f} with {tuned.params} "
            f"({'kept from the last tuning' if kept else f'best of {len(tuned.tried)} tried'})"
        )
        model = build(algorithm, tuned.params)
        start, begun = (None, "cold") if config.retune else _warm_start(home.models, entry, model, data)
        if start is not None:
            model.starting_from(start, WARM_ITERATIONS["als"])
        tracker = tracking.tracker()
        metrics, run_id = train_and_track(
            model,
            data,
            relevant,
            tracker,
            tags,
            {**model.params, "valid_ndcg_at_10": tuned.valid_ndcg, "start": begun},
        )
        path = home.models.save(entry, model.params, model.warm_state())
        with tracker.mlflow.start_run(run_id=run_id):
            tracker.mlflow.log_artifact(str(path))
        return MaterializeResult(
            metadata={
                "test_metrics": _metrics_table({model.name: metrics}),
                "mlflow_run": run_id,
                "factors": model.params["factors"],
                "settings": MetadataValue.json(model.params),
                "validation_grid": markdown_table(pd.DataFrame(tuned.table())),
                "validation_carve": carve.describe(),
                "start": begun,
                "validation_fit_start": f"hybrid_model's last fit on the carve, {WARM_ITERATIONS[algorithm]} "
                f"iterations{f' ({carve_note})' if carve_note else ''}"
                if getattr(tuned.model, "started_warm", False)
                else f"cold ({carve_note or 'the last fit does not fit this model'})",
                "trained_learners": data.shape[0],
                "test_learners": len(relevant),
                **{f"test_{k}": round(v, 4) for k, v in metrics.items() if k.endswith("@10")},
            }
        )

    return factor_model


def _warm_start(store: ModelStore, entry, model: Factorisation, data) -> tuple[dict | None, str]:
    """(the last fit's factors and ids, when ``model`` can start from them (ALS; see
    ``Factorisation.start_fits``); what the fit starts from, in words)."""
    if model.name != "als" or store.last(entry) is None:
        return None, "cold"
    arrays = store.arrays(entry)
    reason = model.start_fits(arrays, data)
    if reason:
        return None, f"cold ({reason})"
    return arrays, f"the last factors, {WARM_ITERATIONS['als']} iterations"


als_model = _factor_asset("als", FactorSettings)
bpr_model = _factor_asset("bpr", BprSettings, COMPARISON)


class BaselineSettings(Config):
    neighbours: int = 50
    max_learners: int = POPULATION_LEARNERS  # comparison models: a seeded sample above it (0: every learner)
    seed: int = 0


@asset(
    group_name=GROUP,
    tags=COMPARISON,
    kinds={"mlflow"},
    deps=DEPS,
    description="Popularity, user-based kNN (eq. 8-9) and content affinity cos(E_u, E_i) (eq. 12) with "
    "MiniLM and TF-IDF.",
)
def baseline_models(
    context: AssetExecutionContext,
    config: BaselineSettings,
    warehouse: WarehouseResource,
    tracking: TrackingResource,
) -> MaterializeResult:
    with warehouse.get_connection() as con:
        _, data, relevant = _context(con, config.max_learners, config.seed)
        _log_population(context, con, data)
        tags = run_tags(context, con)
    tracker = tracking.tracker()
    results, runs = {}, {}
    for model, params in (
        (Popularity(), {}),
        (UserKNN(config.neighbours), {"neighbours": config.neighbours}),
        (Content("minilm"), {}),
        (Content("tfidf"), {}),
    ):
        results[model.name], runs[model.name] = train_and_track(model, data, relevant, tracker, tags, params)
        context.log.info(f"{model.name}: nDCG@10 {results[model.name].get('ndcg@10', 0):.4f}")
    return MaterializeResult(
        metadata={
            "test_metrics": _metrics_table(results),
            "mlflow_runs": MetadataValue.json(runs),
            "trained_learners": data.shape[0],
            "test_learners": len(relevant),
        }
    )


class HybridSettings(Config):
    validation_share: float = 0.2
    seed: int = 0
    # False (the nightly job): keep the last components' settings and weights; score them on validation
    retune: bool = True


def _kept(store: ModelStore, retune: bool) -> tuple[dict[str, dict], dict | None]:
    """(fixed component settings, fixed fusion weights): ALS's from ``als_model``; with ``retune=False`` every
    setting and the weights the last tuning chose."""
    kept = {"als": store.load(ALS)}
    last = None if retune else store.last(HYBRID)
    if last is None:
        return kept, None
    return {**last.params, **kept}, last.weights


@asset(
    group_name=GROUP,
    kinds={"mlflow"},
    deps=[als_model, *DEPS],
    description="The shipped hybrid: a fusion of EASE, item-kNN, ALS, BPR, content, popularity, peer group "
    "and level scores, each tuned and then weighted on a validation carve of train; plus "
    "equation (6) as written.",
)
def hybrid_model(
    context: AssetExecutionContext,
    config: HybridSettings,
    warehouse: WarehouseResource,
    home: ProjectHomeResource,
    tracking: TrackingResource,
    embedder: EmbedderResource,
) -> MaterializeResult:
    data, relevant, (fit_data, valid, carve), tags = _with_validation(
        context, warehouse, config.validation_share, config.seed
    )
    kept, weights = _kept(home.models, config.retune)
    if weights is not None and any(unusable(SPECS[m], fit_data) for m in weights):
        context.log.warning(
            "a component the last weights use cannot learn from this data: the fusion is tuned again"
        )
        kept, weights = _kept(home.models, retune=True)
    # the nightly: weighted ones only, their factor models from the last fits
    names = [m for m in SPECS if SPECS[m].fusion] if weights is None else list(weights)
    starts = FusionStarts() if weights is None else FusionStarts.load(home.models)
    carve_starts, valid, carve_note = starts.for_carve(fit_data, valid)
    if carve_note and weights is not None:
        start = "start from the last carve fits" if carve_starts else "start cold"
        context.log.info(f"the fits on the validation carve {start}: {carve_note}")
    trained = tune_models(fit_data, valid, names=names, kept=kept, log=context.log.info, starts=carve_starts)
    tuning, equation6 = fusion_and_equation6(trained, weights, equation6=config.retune)
    context.log.info(f"fusion weights {tuning.weights}: validation nDCG@10 {tuning.valid_ndcg:.4f}")
    given = {"als": fitted_als(home.models, data)}  # als_model's
    fusion = fitted_fusion(data, trained.params, tuning.weights, given, starts=starts.full)
    FusionStarts.save(
        home.models,
        trained.fitted,
        {m: c for m, c in fusion.components.items() if m not in given},
        trained.fit_data,
    )
    warm = {
        fit: sorted(m for m, model in models.items() if getattr(model, "started_warm", False))
        for fit, models in (("validation_carve", trained.fitted), ("all_of_train", fusion.components))
    }
    tracker = tracking.tracker()
    metrics, run_id = train_and_track(
        fusion,
        data,
        relevant,
        tracker,
        tags,
        {"weights": tuning.weights, "params": trained.params, "validation_share": config.validation_share},
        fit=False,
    )
    with tracker.mlflow.start_run(run_id=run_id):
        tracker.mlflow.log_metrics(
            {
                "valid_ndcg_at_10": tuning.scored_ndcg,
                "valid_ndcg_at_10_search": tuning.valid_ndcg,
                **{f"valid_ndcg_at_10_{m}": v for m, v in trained.valid_ndcg().items()},
            }
        )
    with warehouse.get_connection() as con:
        titles = load_courses(con)["title"].to_numpy()
        last_cold = (
            None if config.retune else getattr(home.models.last(HYBRID), "cold_start_popularity", None)
        )
        cold_weight, cold_grid = (
            (last_cold, {}) if last_cold is not None else tune_blend(con, fit_data, valid, embedder.embed)
        )
    bundle = home.models.save_folder(
        HYBRID_BUNDLE,
        lambda folder: registry.save_bundle(folder, data, titles, fusion, trained.params, cold_weight),
    )
    scores = {
        "valid_ndcg_at_10": tuning.scored_ndcg,
        **{f"test_{k.replace('@', '_at_')}": v for k, v in metrics.items()},
    }
    home.models.save(HYBRID, HybridChoice(tuning.weights, trained.params, str(bundle), cold_weight, scores))
    if equation6 is not None:
        home.models.save(
            HYBRID_EQ6, Equation6Choice(equation6.alpha, equation6.level_weight, equation6.valid_ndcg)
        )
    components = pd.DataFrame(
        tuning.table() or [{"component": m, "weight": w} for m, w in tuning.weights.items()]
    )
    return MaterializeResult(
        metadata={
            "test_metrics": _metrics_table({"hybrid": metrics}),
            "validation_ndcg@10": round(tuning.scored_ndcg, 4),
            "validation_ndcg@10_of_the_search": round(tuning.valid_ndcg, 4),
            "weights": MetadataValue.json(tuning.weights),
            "components": markdown_table(components),
            "validation_carve": carve.describe(),
            "component_settings": MetadataValue.json(trained.params),
            "skipped": MetadataValue.json(trained.skipped),
            "equation6_alpha": None if equation6 is None else equation6.alpha,
            "started_from_the_last_factors": MetadataValue.json(warm),
            "mlflow_run": run_id,
            "cold_start_popularity_weight": cold_weight,
            "cold_start_validation_f1@5": MetadataValue.json(
                {str(w): round(v, 4) for w, v in cold_grid.items()}
            ),
        }
    )


class RatingSettings(Config):
    regularisation: float = 5.0
    neighbours: int = 50
    max_learners: int = POPULATION_LEARNERS  # comparison models: a seeded sample above it (0: every learner)
    seed: int = 0


@asset(
    group_name=GROUP,
    tags=COMPARISON,
    kinds={"mlflow"},
    deps=[split],
    description="Rating prediction (global mean, biases, user-kNN eq. 9) scored by MAE and MSE where the "
    "source has explicit ratings.",
)
def rating_models(
    context: AssetExecutionContext,
    config: RatingSettings,
    warehouse: WarehouseResource,
    tracking: TrackingResource,
) -> MaterializeResult:
    with warehouse.get_connection() as con:
        info = ingest.source_info(con)
        has_ratings = "rating" in columns(con, "interactions")
        # learners with training rows, a seeded sample of them above max_learners
        if has_ratings and info["explicit_ratings"]:
            learners = training_learners(con)
            rows = (
                sample_rows(len(learners), config.max_learners, config.seed) if config.max_learners else None
            )
            kept = None if rows is None else learners[rows]
            train, test = (
                split_frame(con, ("train",), kept),
                split_frame(con, ("test",), kept).dropna(subset=["rating"]),
            )
        tags = run_tags(context, con)
    if not (has_ratings and info["explicit_ratings"]):
        reason = (
            "the source has no ratings"
            if not has_ratings
            else "the source's ratings encode enrolment states, not opinions: MAE / MSE would mean nothing"
        )
        context.log.warning(f"rating prediction skipped: {reason}")
        return MaterializeResult(metadata={"skipped": reason})
    if rows is not None:
        context.log.info(
            f"rating models: trained and scored on a seeded sample of {len(rows):,} of {len(learners):,} "
            "learners"
        )
    models = RatingModels(tuple(info["rating_scale"]), config.regularisation, config.neighbours).fit(train)
    tracker, table, runs = tracking.tracker(), [], {}
    for name in models.NAMES:
        errors = rating_errors(test["rating"], models.predict(name, test))
        with tracker.run(name, {**tags, "model": name}) as run:
            tracker.mlflow.log_params({**config.model_dump(), "rating_scale": info["rating_scale"]})
            tracker.mlflow.log_metrics(
                {f"test_{k}": v for k, v in errors.items()} | {"test_ratings": len(test)}
            )
        table.append({"model": name, **{k: round(v, 4) for k, v in errors.items()}})
        runs[name] = run.info.run_id
    return MaterializeResult(
        metadata={
            "test_ratings": len(test),
            "errors": markdown_table(pd.DataFrame(table)),
            "mlflow_runs": MetadataValue.json(runs),
        }
    )


class NeuralSettings(Config):
    dim: int = 64
    negatives: int = 4
    max_epochs: int = 20
    patience: int = 2
    learning_rate: float = 0.003
    batch_size: int = 4096
    validation_share: float = 0.2
    seed: int = 0
    max_learners: int = POPULATION_LEARNERS  # a comparison model: a seeded sample above it (0: every learner)


@asset(
    group_name=GROUP,
    tags=COMPARISON,
    kinds={"pytorch", "mlflow"},
    deps=[als_model, *DEPS],
    description="Neural hybrid: shared attention over ALS factors and MiniLM embeddings, BPR loss, "
    "early-stopped on validation.",
)
def neural_hybrid_model(
    context: AssetExecutionContext,
    config: NeuralSettings,
    warehouse: WarehouseResource,
    home: ProjectHomeResource,
    tracking: TrackingResource,
) -> MaterializeResult:
    data, relevant, (fit_data, valid, _), tags = _with_validation(
        context, warehouse, config.validation_share, config.seed, config.max_learners
    )
    params = {k: v for k, v in config.model_dump().items() if k not in ("validation_share", "max_learners")}
    model = NeuralHybrid(**params, als_params=home.models.load(ALS)).fit(data, fit_data, valid)
    for record in model.history:
        context.log.info(
            ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())
        )
    tracker = tracking.tracker()
    metrics, run_id = train_and_track(
        model, data, relevant, tracker, tags, {**params, "best_epochs": model.best_epochs}, fit=False
    )
    state = home.models.path(NEURAL_HYBRID, ".pt")
    save_state(model, state)
    # the report trains this many
    home.models.save(NEURAL_HYBRID, {**params, "best_epochs": model.best_epochs})
    with tracker.mlflow.start_run(run_id=run_id):
        tracker.mlflow.log_artifact(str(state))
        tracker.log_dict({"history": model.history}, "training_history.json")
    if model.fell_back:
        context.log.warning(model.fallback_reason)
    return MaterializeResult(
        metadata={
            "test_metrics": _metrics_table({model.name: metrics}),
            "best_epochs": model.best_epochs,
            "fell_back_to_als": model.fell_back,
            "fallback_reason": model.fallback_reason,
            "history": markdown_table(pd.DataFrame(model.history).round(4)),
            "mlflow_run": run_id,
        }
    )


class GateSettings(Config):
    tolerance: float = 0.01  # a challenger may be this much worse (validation nDCG@10) and still be promoted


@asset(
    group_name=GROUP,
    kinds={"mlflow"},
    deps=[hybrid_model],
    description="The serving recommender (MLflow pyfunc): a new version of coursepilot-recommender, "
    "@challenger, promoted to @champion by the gate.",
)
def recommender(
    context: AssetExecutionContext,
    config: GateSettings,
    warehouse: WarehouseResource,
    home: ProjectHomeResource,
    tracking: TrackingResource,
) -> MaterializeResult:
    with warehouse.get_connection() as con:
        tags = run_tags(context, con)
    choice = home.models.load(HYBRID)
    tracker = tracking.tracker()
    with tracker.run("recommender", {**tags, "model": "hybrid"}):
        tracker.mlflow.log_params({"weights": choice.weights})
        tracker.mlflow.log_metrics(choice.metrics)
        info = registry.log_serving_model(Path(choice.bundle))
    version = str(info.registered_model_version)
    promoted, reason = registry.promotion_gate(tracker.mlflow.MlflowClient(), version, config.tolerance)
    (context.log.info if promoted else context.log.warning)(reason)
    return MaterializeResult(
        metadata={
            "registered_model": registry.MODEL_NAME,
            "version": version,
            "promoted": promoted,
            "gate": reason,
            "champion": registry.champion_version(tracker.mlflow.MlflowClient()),
            "model_uri": info.model_uri,
            "valid_ndcg@10": round(choice.metrics["valid_ndcg_at_10"], 4),
            "weights": MetadataValue.json(choice.weights),
        }
    )
