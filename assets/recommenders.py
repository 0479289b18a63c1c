"""Recommender stage: baselines, factor models, the tuned hybrid, and the registered serving model."""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from coursepilot import ingest, registry
from coursepilot.evaluation import held_out
from coursepilot.models.base import load_train_data, split_frame
from coursepilot.models.ratings import RatingModels, rating_errors
from coursepilot.warehouse import columns
from coursepilot.models.factors import Factorisation, tune_factors
from coursepilot.models.hybrid import Hybrid, level_targets, tune, validation_data
from coursepilot.models.neural import NeuralHybrid, save_state
from coursepilot.models.simple import Content, Popularity, UserKNN
from coursepilot.models.store import load_arrays, load_params, model_path, previous_choice, save_arrays, save_params
from coursepilot.sampling import POPULATION_LEARNERS, sample_rows, tuning_population
from coursepilot.training import train_and_track
from resources import ProjectHomeResource, TrackingResource, WarehouseResource

from .lineage import run_tags
from .metadata import markdown_table

GROUP = "recommenders"
DEPS = ["split", "course_embeddings", "tfidf_course_vectors", "course_labels", "learner_labels"]


def _context(con, max_learners: int = 0, seed: int = 0):
    """(rating scale, training data, test sets), of a seeded sample of at most ``max_learners`` learners when set."""
    scale = ingest.source_info(con)["rating_scale"]
    data = load_train_data(con, scale, max_learners, seed)
    return scale, data, held_out(con, data, "test", scale)


def _with_validation(context, warehouse: WarehouseResource, share: float, seed: int, max_learners: int = 0):
    """(rating scale, data, test sets, data minus the validation carve, validation sets, lineage tags), of a
    seeded sample of at most ``max_learners`` learners when that is set (only their rows are read)."""
    with warehouse.get_connection(read_only=True) as con:
        scale, data, relevant = _context(con, max_learners, seed)
        fit_data, valid = validation_data(con, data, scale, share, seed)
        _log_population(context, con, data)
        tags = run_tags(context, con)
    return scale, data, relevant, fit_data, valid, tags


def _log_population(context, con, data) -> None:
    everyone = con.execute("SELECT count(*) FROM learners").fetchone()[0]
    if data.shape[0] < everyone:
        context.log.info(f"comparison model: trained and scored on a seeded sample of {data.shape[0]:,} of {everyone:,} learners")


def _metrics_table(results: dict[str, dict[str, float]]) -> MetadataValue:
    keys = ["precision@10", "recall@10", "ndcg@10", "map@10", "hit@10", "mrr"]
    frame = pd.DataFrame([{"model": name, **{k: round(m.get(k, float("nan")), 4) for k in keys}} for name, m in results.items()])
    return markdown_table(frame)


class FactorSettings(Config):
    factor_candidates: list[int] = [16, 32, 64]  # tried on the validation carve; the best is refit on train
    iterations: int = 15
    regularization: float = 1.0
    learning_rate: float = 0.05
    alpha: float = 2.0
    validation_share: float = 0.2
    seed: int = 0
    retune: bool = True  # False (the nightly job): keep the factor count the last tuning chose, fit once
    max_learners: int = 0  # 0: every learner; otherwise a seeded sample of at most this many (coursepilot.sampling)

    def model_params(self) -> dict:
        return {k: v for k, v in self.model_dump().items()
                if k not in ("factor_candidates", "validation_share", "retune", "max_learners")}


class BprSettings(FactorSettings):
    """BPR is a comparison model (ALS serves): above ``max_learners`` it trains on a sample."""

    iterations: int = 100
    regularization: float = 0.01
    max_learners: int = POPULATION_LEARNERS


def _factor_asset(algorithm: str, settings_type):
    @asset(name=f"{algorithm}_model", group_name=GROUP, kinds={"implicit", "mlflow"}, deps=DEPS,
           description=f"implicit {algorithm.upper()} on the confidence-weighted training matrix; factors under <home>/models.")
    def factor_model(context: AssetExecutionContext, config: settings_type, warehouse: WarehouseResource,
                     home: ProjectHomeResource, tracking: TrackingResource) -> MaterializeResult:
        _, data, relevant, fit_data, valid, tags = _with_validation(context, warehouse, config.validation_share, config.seed,
                                                                    config.max_learners)
        factors, tried = (None if config.retune else previous_choice(home.home, algorithm, "factors")), {}
        if factors is None:
            factors, tried = tune_factors(algorithm, config.model_params(), config.factor_candidates, fit_data, valid)
            context.log.info(f"validation nDCG@10 by factors: {tried}; refitting with {factors}")
        else:
            context.log.info(f"kept {factors} factors from the last tuning (retune=False)")
        params = {**config.model_params(), "factors": factors}
        model = Factorisation(algorithm, **params)
        tracker = tracking.tracker(home.home)
        metrics, run_id = train_and_track(model, data, relevant, tracker, tags,
                                          {**params, **{f"valid_ndcg_at_10_f{f}": round(v, 4) for f, v in tried.items()}})
        path = save_arrays(home.home, model.name, params, user_factors=model.user_factors, item_factors=model.item_factors)
        with tracker.mlflow.start_run(run_id=run_id):
            tracker.mlflow.log_artifact(str(path))
        return MaterializeResult(metadata={"test_metrics": _metrics_table({model.name: metrics}), "mlflow_run": run_id,
                                           "factors": factors, "validation_ndcg@10_by_factors": MetadataValue.json(tried),
                                           "trained_learners": data.shape[0], "test_learners": len(relevant),
                                           **{f"test_{k}": round(v, 4) for k, v in metrics.items() if k.endswith("@10")}})

    return factor_model


als_model = _factor_asset("als", FactorSettings)
bpr_model = _factor_asset("bpr", BprSettings)


class BaselineSettings(Config):
    neighbours: int = 50
    max_learners: int = POPULATION_LEARNERS  # comparison models: a seeded sample above it (0: every learner)
    seed: int = 0


@asset(group_name=GROUP, kinds={"mlflow"}, deps=DEPS,
       description="Popularity, user-based kNN (eq. 8-9) and content affinity cos(E_u, E_i) (eq. 12) with MiniLM and TF-IDF.")
def baseline_models(context: AssetExecutionContext, config: BaselineSettings, warehouse: WarehouseResource,
                    home: ProjectHomeResource, tracking: TrackingResource) -> MaterializeResult:
    with warehouse.get_connection(read_only=True) as con:
        _, data, relevant = _context(con, config.max_learners, config.seed)
        _log_population(context, con, data)
        tags = run_tags(context, con)
    tracker = tracking.tracker(home.home)
    results, runs = {}, {}
    for model, params in ((Popularity(), {}), (UserKNN(config.neighbours), {"neighbours": config.neighbours}),
                          (Content("minilm"), {}), (Content("tfidf"), {})):
        results[model.name], runs[model.name] = train_and_track(model, data, relevant, tracker, tags, params)
        context.log.info(f"{model.name}: nDCG@10 {results[model.name].get('ndcg@10', 0):.4f}")
    return MaterializeResult(metadata={"test_metrics": _metrics_table(results), "mlflow_runs": MetadataValue.json(runs),
                                       "trained_learners": data.shape[0], "test_learners": len(relevant)})


class HybridSettings(Config):
    validation_share: float = 0.2
    seed: int = 0
    retune: bool = True  # False (the nightly job): keep the last alpha and level weight; score them on validation only


def fitted_hybrid(home, data, content: str = "minilm", name: str = "hybrid", targets=None) -> Hybrid:
    """The hybrid with the weights ``hybrid_model`` chose, on the ``als_model`` factors."""
    choice = load_params(home, "hybrid")
    return Hybrid(_fitted_als(home, data), Content(content).fit(data), choice["alpha"], choice["level_weight"], name).fit(
        data, fit_parts=False, targets=targets)


def _fitted_als(home, data) -> Factorisation:
    """The ALS model the ``als_model`` asset trained on the full training split."""
    model = Factorisation("als", **load_params(home, "als"))
    factors = load_arrays(home, "als")
    model.data, model.user_factors, model.item_factors = data, factors["user_factors"], factors["item_factors"]
    return model


@asset(group_name=GROUP, kinds={"mlflow"}, deps=["als_model", *DEPS],
       description="alpha*CF + (1-alpha)*sim (+ level alignment), alpha and level weight tuned on a validation split carved from train.")
def hybrid_model(context: AssetExecutionContext, config: HybridSettings, warehouse: WarehouseResource,
                 home: ProjectHomeResource, tracking: TrackingResource) -> MaterializeResult:
    _, data, relevant, fit_data, valid, tags = _with_validation(context, warehouse, config.validation_share, config.seed)
    fit_data, valid = tuning_population(fit_data, valid)
    tracker = tracking.tracker(home.home)
    cf = Factorisation("als", **load_params(home.home, "als")).fit(fit_data)  # one validation fit serves every grid
    previous = None if config.retune else previous_choice(home.home, "hybrid", "alpha")
    kept = {}
    if previous is not None:
        weight = load_params(home.home, "hybrid")["level_weight"]
        kept = {"alphas": (previous,), "level_weights": tuple(sorted({0.0, weight}))}
        context.log.info(f"kept alpha {previous} and level weight {weight} from the last tuning (retune=False)")
    results, tunings, runs = {}, {}, {}
    als = _fitted_als(home.home, data)
    for content in ("minilm",) if kept else ("minilm", "tfidf"):
        tuning = tunings[content] = tune(Hybrid(cf, Content(content).fit(fit_data)), fit_data, valid, fit_parts=False, **kept)
        suffix, similarity = "" if content == "minilm" else "_tfidf", Content(content).fit(data)
        for name, level in ((f"hybrid{suffix}", False), (f"hybrid{suffix}_level", True)):
            alpha, weight = tuning.choice(level)
            hybrid = Hybrid(als, similarity, alpha, weight, name).fit(data, fit_parts=False)
            results[name], runs[name] = train_and_track(hybrid, data, relevant, tracker, tags,
                                                        {"alpha": alpha, "level_weight": weight, "content": content,
                                                         "validation_share": config.validation_share}, fit=False)
    best = tunings["minilm"]
    level = best.level_weight > 0  # the grid includes weight 0: the level term stays only where validation says it helps
    alpha, weight = best.choice(level)
    chosen = "hybrid_level" if level else "hybrid"
    choice = {"chosen": chosen, "alpha": alpha, "level_weight": weight}
    save_params(home.home, "hybrid",
                {**choice, "metrics": {"valid_ndcg_at_10": best.valid_ndcg,
                                       **{f"test_{k.replace('@', '_at_')}": v for k, v in results[chosen].items()}}})
    grid = best.grid.pivot(index="alpha", columns="level_weight", values="ndcg@10").round(4).reset_index()
    grid.columns = [f"w={c}" if c != "alpha" else c for c in grid.columns]
    return MaterializeResult(metadata={
        "test_metrics": _metrics_table(results), **choice, "validation_ndcg@10": round(best.valid_ndcg, 4),
        "validation_grid_minilm": markdown_table(grid), "mlflow_runs": MetadataValue.json(runs)})


class RatingSettings(Config):
    regularisation: float = 5.0
    neighbours: int = 50
    max_learners: int = POPULATION_LEARNERS  # comparison models: a seeded sample above it (0: every learner)
    seed: int = 0


@asset(group_name=GROUP, kinds={"mlflow"}, deps=["split"],
       description="Rating prediction (global mean, biases, user-kNN eq. 9) scored by MAE and MSE where the source has explicit ratings.")
def rating_models(context: AssetExecutionContext, config: RatingSettings, warehouse: WarehouseResource,
                  home: ProjectHomeResource, tracking: TrackingResource) -> MaterializeResult:
    with warehouse.get_connection(read_only=True) as con:
        info = ingest.source_info(con)
        has_ratings = "rating" in columns(con, "interactions")
        if has_ratings and info["explicit_ratings"]:  # learners with training rows, a seeded sample of them above max_learners
            learners = np.asarray([r[0] for r in con.execute("SELECT DISTINCT learner_id FROM split WHERE split = 'train' "
                                                             "ORDER BY 1").fetchall()], dtype=object)
            rows = sample_rows(len(learners), config.max_learners, config.seed) if config.max_learners else None
            kept = None if rows is None else learners[rows]
            train, test = split_frame(con, ("train",), kept), split_frame(con, ("test",), kept).dropna(subset=["rating"])
        tags = run_tags(context, con)
    if not (has_ratings and info["explicit_ratings"]):
        reason = ("the source has no ratings" if not has_ratings else
                  "the source's ratings encode enrolment states, not opinions: MAE / MSE would mean nothing")
        context.log.warning(f"rating prediction skipped: {reason}")
        return MaterializeResult(metadata={"skipped": reason})
    if rows is not None:
        context.log.info(f"rating models: trained and scored on a seeded sample of {len(rows):,} of {len(learners):,} learners")
    models = RatingModels(tuple(info["rating_scale"]), config.regularisation, config.neighbours).fit(train)
    tracker, table, runs = tracking.tracker(home.home), [], {}
    for name in models.NAMES:
        errors = rating_errors(test["rating"], models.predict(name, test))
        with tracker.run(name, {**tags, "model": name}) as run:
            tracker.mlflow.log_params({**config.model_dump(), "rating_scale": info["rating_scale"]})
            tracker.mlflow.log_metrics({f"test_{k}": v for k, v in errors.items()} | {"test_ratings": len(test)})
        table.append({"model": name, **{k: round(v, 4) for k, v in errors.items()}})
        runs[name] = run.info.run_id
    return MaterializeResult(metadata={"test_ratings": len(test), "errors": markdown_table(pd.DataFrame(table)),
                                       "mlflow_runs": MetadataValue.json(runs)})


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


@asset(group_name=GROUP, kinds={"pytorch", "mlflow"}, deps=["als_model", *DEPS],
       description="Neural hybrid: shared attention over ALS factors and MiniLM embeddings, BPR loss, early-stopped on validation.")
def neural_hybrid_model(context: AssetExecutionContext, config: NeuralSettings, warehouse: WarehouseResource,
                        home: ProjectHomeResource, tracking: TrackingResource) -> MaterializeResult:
    _, data, relevant, fit_data, valid, tags = _with_validation(context, warehouse, config.validation_share, config.seed,
                                                                config.max_learners)
    params = {k: v for k, v in config.model_dump().items() if k not in ("validation_share", "max_learners")}
    model = NeuralHybrid(**params, als_params=load_params(home.home, "als")).fit(data, fit_data, valid)
    for record in model.history:
        context.log.info(", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
    tracker = tracking.tracker(home.home)
    metrics, run_id = train_and_track(model, data, relevant, tracker, tags, {**params, "best_epochs": model.best_epochs}, fit=False)
    state = model_path(home.home, "neural_hybrid").with_suffix(".pt")
    save_state(model, state)
    save_params(home.home, "neural_hybrid", {**params, "best_epochs": model.best_epochs})  # the report trains this many
    with tracker.mlflow.start_run(run_id=run_id):
        tracker.mlflow.log_artifact(str(state))
        tracker.log_dict({"history": model.history}, "training_history.json")
    return MaterializeResult(metadata={"test_metrics": _metrics_table({model.name: metrics}), "best_epochs": model.best_epochs,
                                       "history": markdown_table(pd.DataFrame(model.history).round(4)), "mlflow_run": run_id})


class GateSettings(Config):
    tolerance: float = 0.01  # a challenger may be this much worse (validation nDCG@10) and still be promoted


@asset(group_name=GROUP, kinds={"mlflow"}, deps=["hybrid_model", "als_model"],
       description="The serving recommender (MLflow pyfunc): a new version of coursepilot-recommender, @challenger, "
                   "promoted to @champion by the gate.")
def recommender(context: AssetExecutionContext, config: GateSettings, warehouse: WarehouseResource, home: ProjectHomeResource,
                tracking: TrackingResource) -> MaterializeResult:
    with warehouse.get_connection(read_only=True) as con:
        data = load_train_data(con, ingest.source_info(con)["rating_scale"])
        titles = con.execute("SELECT title FROM courses ORDER BY course_id").df()["title"].to_numpy()
        tags = run_tags(context, con)
    factors = load_arrays(home.home, "als")
    choice = load_params(home.home, "hybrid")
    metrics = choice.pop("metrics")
    tracker = tracking.tracker(home.home)
    with tempfile.TemporaryDirectory(prefix="coursepilot-bundle-") as folder:
        bundle = registry.save_bundle(Path(folder), learner_ids=data.learner_ids, course_ids=data.course_ids,
                                      titles=titles, seen=data.matrix, user_factors=factors["user_factors"],
                                      item_factors=factors["item_factors"], course_vectors=data.course_vectors,
                                      popularity=np.log1p(np.asarray((data.matrix > 0).sum(axis=0)).ravel()),
                                      level_targets=level_targets(data), difficulty=data.difficulty,
                                      alpha=choice["alpha"], level_weight=choice["level_weight"])
        with tracker.run("recommender", {**tags, "model": choice["chosen"]}):
            tracker.mlflow.log_params(choice)
            tracker.mlflow.log_metrics(metrics)
            info = registry.log_serving_model(bundle)
    version = str(info.registered_model_version)
    promoted, reason = registry.promotion_gate(tracker.mlflow.MlflowClient(), version, config.tolerance)
    (context.log.info if promoted else context.log.warning)(reason)
    return MaterializeResult(metadata={"registered_model": registry.MODEL_NAME, "version": version, "promoted": promoted,
                                       "gate": reason, "champion": registry.champion_version(tracker.mlflow.MlflowClient()),
                                       "model_uri": info.model_uri, "valid_ndcg@10": round(metrics["valid_ndcg_at_10"], 4),
                                       **choice})
