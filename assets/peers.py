"""Peer stage: learning state over time, dynamic peer clusters, top-k peer recommendations."""

import base64
import io
from dataclasses import asdict

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from coursepilot import ingest
from coursepilot.evaluation.metrics import hit_matrix, metrics_from_hits
from coursepilot.evaluation.protocol import held_out
from coursepilot.evaluation.significance import paired_ttest
from coursepilot.models.base import read_train, split_matrix
from coursepilot.models.factors import Factorisation
from coursepilot.models.hybrid import Hybrid, level_targets_scorer, validation_data
from coursepilot.models.simple import Content
from coursepilot.models.store import ModelStore
from coursepilot.peers.clusters import ClusterConfig
from coursepilot.peers.incremental import (
    STATE_TABLE,
    peers_to_rank,
    state_summary,
    updated_clusters,
    updated_state,
)
from coursepilot.peers.ranking import (
    PeerConfig,
    active_peers,
    cf_peers,
    cluster_random_peers,
    evaluate_peers,
    hybrid_peers,
    ranked_matrix,
    scored_candidates,
    stored_peers,
)
from coursepilot.peers.reads import (
    course_durations,
    course_ids,
    last_proficiency,
    profile_jobs,
    state_by_week,
    train_with_courses,
)
from coursepilot.peers.state import StateWeights, Steering, last_targets, tune_steering
from coursepilot.peers.state import learner_state as compute_state
from coursepilot.peers.tracking import KeptTrack
from coursepilot.peers.tuning import CourseSide, PeerTuning, peer_validation, tune_weights, tuning_sample
from coursepilot.plots import figure, save_png
from coursepilot.profiles import load_profiles
from coursepilot.sampling import (
    SCORED_LEARNERS,
    TUNING_FIT_LEARNERS,
    TUNING_LEARNERS,
    restrict,
    sample_learners,
    sample_rows,
)
from coursepilot.schema import DIFFICULTY_LEVELS
from coursepilot.stored import (
    ALS,
    CLUSTER_MAP,
    CLUSTER_TRACK,
    DIFFICULTY_STEERING,
    HYBRID_EQ6,
    LEARNER_STATE,
    PEER_CENTROIDS,
    PEER_METRICS,
    PEER_POOLS,
    PEER_WEIGHTS,
    Centroids,
    PeerMetrics,
    SteeringChoice,
    fitted_equation6,
)
from coursepilot.training import train_and_track
from coursepilot.warehouse import columns, replace_tables, row_count
from resources import ProjectHomeResource, TrackingResource, WarehouseResource

from . import COMPARISON
from .courses import course_labels
from .lineage import run_tags
from .metadata import markdown_table
from .profiles import learner_profiles
from .recommenders import als_model, hybrid_model
from .split import split

GROUP = "peers"


class StateSettings(Config):
    """Mirrors :class:`coursepilot.peers.StateWeights`, whose defaults it takes."""

    alpha: float = StateWeights.alpha
    beta: float = StateWeights.beta
    gamma: float = StateWeights.gamma
    eta1: float = StateWeights.eta1
    eta2: float = StateWeights.eta2
    eta3: float = StateWeights.eta3
    delta: float = StateWeights.delta
    theta: float = StateWeights.theta
    # recompute only learners whose training rows changed since the last run (the result is the same)
    incremental: bool = True


@asset(
    group_name=GROUP,
    kinds={"duckdb"},
    deps=[split, course_labels],
    description="Per learner and week: watch W, rating R, engagement E, proficiency D (eq. 3), state T (eq. "
    "6), knowledge P (eq. 20) and the next target difficulty (eq. 21); a signal missing from a "
    "week is left out of that week's T and P, the other weights renormalised.",
)
def learner_state(
    context: AssetExecutionContext,
    config: StateSettings,
    warehouse: WarehouseResource,
    home: ProjectHomeResource,
) -> MaterializeResult:
    weights = StateWeights(**config.model_dump(exclude={"incremental"}))
    with warehouse.get_connection() as con:
        scale = ingest.source_info(con)["rating_scale"]
        update = updated_state(con, scale, weights, config.incremental)
        update.write(con)
        summary = state_summary(con, config.theta)
        signals = [s for s in ("W", "R", "E") if s in columns(con, STATE_TABLE)]
    # difficulty_steering rebuilds P with the same weights
    home.models.save(LEARNER_STATE, weights)
    missing = [s for s in ("W", "R") if s not in signals]
    if missing:
        context.log.info(
            f"signals the source lacks, left out of T and P (weights renormalised): {', '.join(missing)}"
        )
    return MaterializeResult(
        metadata={
            **update.changes.metadata(),
            "rows_written": len(update.rows) if update.merged else "every row",
            **summary,
            "signals": ", ".join(signals),
        }
    )


class ClusterSettings(Config):
    k: int = 0  # 0: choose by silhouette within k_min..k_max on the last window, then keep for every window
    k_min: int = 4
    k_max: int = 16
    svd_dims: int = 32
    profile_dims: int = 16
    dbscan_max_learners: int = 20_000
    seed: int = 0
    retune: bool = True  # False (the nightly job): keep the k the last silhouette search chose
    # follow the kept track to today's windows (K-means again from the kept last window on) instead of
    # clustering every window from scratch; needs k kept (retune=False)
    incremental: bool = True

    def cluster_config(self, kept_k: int | None = None) -> ClusterConfig:
        return ClusterConfig(
            k=self.k or kept_k or None,
            k_range=(self.k_min, self.k_max),
            svd_dims=self.svd_dims,
            profile_dims=self.profile_dims,
            dbscan_max_learners=self.dbscan_max_learners,
            seed=self.seed,
        )


def _plot(features: np.ndarray, labels: np.ndarray, seed: int) -> str:
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(features), min(3000, len(features)), replace=False)
    xy = PCA(2, random_state=seed).fit_transform(features[idx])
    fig, ax = figure(6, 5)
    ax.scatter(xy[:, 0], xy[:, 1], c=labels[idx], s=6, cmap="tab20")
    ax.set(title="Peer clusters, last window (PCA of cluster features)", xlabel="PC 1", ylabel="PC 2")
    buffer = io.BytesIO()
    save_png(fig, buffer, dpi=80)
    return base64.b64encode(buffer.getvalue()).decode()


@asset(
    group_name=GROUP,
    kinds={"duckdb", "sklearn"},
    deps=[learner_state, learner_profiles],
    description="K-means and DBSCAN peer groups per weekly window over interactions (eq. 13), profiles (eq. "
    "18-19) and context.",
)
def peer_clusters(
    context: AssetExecutionContext,
    config: ClusterSettings,
    warehouse: WarehouseResource,
    home: ProjectHomeResource,
) -> MaterializeResult:
    settings = config.cluster_config(
        None if config.retune else getattr(home.models.last(PEER_CENTROIDS), "k", None)
    )
    kept = home.models.last(CLUSTER_TRACK) if config.incremental else None
    with warehouse.get_connection() as con:
        update = updated_clusters(
            con,
            settings,
            kept and KeptTrack.from_arrays(home.models.arrays(CLUSTER_TRACK)),
            config.incremental,
        )
        replace_tables(con, update.tables, update.merged)
    tracked = update.tracked
    k, silhouettes, moved, noise = tracked.k, tracked.silhouettes, tracked.moved, tracked.noise
    weeks = update.kept.weeks
    home.models.save(
        PEER_CENTROIDS,
        Centroids(k, int(weeks[-1])),
        {"centroids": tracked.centroids, "labels": tracked.labels},
    )
    home.models.save(CLUSTER_TRACK, {"k": k, "week": int(weeks[-1])}, update.kept.arrays())
    cluster_map = _plot(tracked.features, tracked.labels, config.seed)
    home.models.path(CLUSTER_MAP, ".png").write_bytes(base64.b64decode(cluster_map))
    sizes = pd.Series(tracked.labels).value_counts().sort_index()
    ran = noise[noise > -2]
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(weeks) * len(tracked.labels),
            **update.metadata(),
            "k": k,
            "windows": len(weeks),
            "silhouette_by_k": MetadataValue.json({str(key): round(v, 4) for key, v in silhouettes.items()}),
            "silhouette": round(silhouettes[k], 4),
            "cluster_sizes": markdown_table(
                pd.DataFrame({"cluster": sizes.index, "learners": sizes.to_numpy()})
            ),
            "moved_since_previous_window": MetadataValue.json(moved),
            "dbscan_clusters": int(len(set(ran) - {-1})),
            "dbscan_noise_share": round(float(np.mean(ran == -1)), 4) if len(ran) else 0.0,
            "cluster_map": MetadataValue.md(f"![clusters](data:image/png;base64,{cluster_map})"),
        }
    )


class SteeringSettings(Config):
    """Equation (21)'s delta and theta are chosen on this validation carve of train (the hybrid's own)."""

    validation_share: float = 0.2
    seed: int = 0


def _ndcg(model, relevant: dict) -> np.ndarray:
    """Per-learner nDCG@10 of a fitted ``model`` over the learners of ``relevant`` ({row: course columns})."""
    rows = np.array(sorted(relevant), dtype=np.int64)
    sets = [relevant[int(r)] for r in rows]
    hits = hit_matrix(model.recommend(rows, 10), sets)
    return metrics_from_hits(hits, np.array([len(s) for s in sets]), (10,))["ndcg@10"]


def _carved_state(
    con, data, train: pd.DataFrame, held: np.ndarray, rows: np.ndarray, scale, weights: StateWeights
) -> pd.DataFrame:
    """Learning state of the learner ``rows`` of ``data`` from their coded training rows (``train``)
    outside the carve (``held``); learners numbered by position in ``rows``."""
    coded = train[~held]
    coded = coded[np.isin(coded["row"], rows)]
    # -1 (unknown): None
    difficulty = np.array([*DIFFICULTY_LEVELS, None], dtype=object)[data.difficulty[coded["col"]]]
    frame = coded.drop(columns=["row", "col"]).assign(
        learner_id=np.searchsorted(rows, coded["row"]), course_id=coded["col"], difficulty=difficulty
    )
    duration = course_durations(con, data.course_ids)
    if duration is not None:
        frame["duration_min"] = duration[coded["col"]]
    return compute_state(frame, scale, weights)


def _tuned_steering(
    con, data, train, store: ModelStore, config: SteeringSettings, scale
) -> tuple[Steering, float, str]:
    """(eq. 21's delta and theta tuned on the validation carve of train, the unsteered ranking's validation
    nDCG@10, the carve). The equation (6) hybrid is fitted on train minus the carve, within the tuning
    population."""
    fit_data, valid, carve = validation_data(con, data, scale, config.validation_share, config.seed, train)
    rows = sample_rows(data.shape[0], TUNING_FIT_LEARNERS, config.seed)
    rows = np.arange(data.shape[0]) if rows is None else rows
    fit_data, valid = (
        fit_data.subset(rows),
        sample_learners(restrict(valid, rows), TUNING_LEARNERS, config.seed),
    )
    state = _carved_state(con, data, train, carve.held, rows, scale, store.load(LEARNER_STATE))
    choice = store.load(HYBRID_EQ6)
    als = Factorisation("als", **store.load(ALS))
    hybrid = Hybrid(als, Content("minilm"), choice.alpha, choice.level_weight).fit(fit_data)
    ndcg = level_targets_scorer(hybrid, fit_data, valid)

    def score(targets: pd.Series | None) -> float:
        return ndcg(None if targets is None else targets.reindex(np.arange(len(rows))).to_numpy(float))

    return tune_steering(state, score), score(None), carve.describe()


@asset(
    group_name=GROUP,
    tags=COMPARISON,
    kinds={"mlflow"},
    deps=[learner_state, hybrid_model, als_model],
    description="Does equation (21)'s target difficulty help? delta and theta tuned on a validation carve "
    "of train; the tuned hybrid with t_s from eq. 21 vs from the learner labels (unsteered), on "
    "test.",
)
def difficulty_steering(
    context: AssetExecutionContext,
    config: SteeringSettings,
    warehouse: WarehouseResource,
    home: ProjectHomeResource,
    tracking: TrackingResource,
) -> MaterializeResult:
    # equation (6)'s level term, as validation tuned it
    chosen = getattr(home.models.last(HYBRID_EQ6), "level_weight", None)
    if not chosen:
        reason = (
            "validation gave the level term no weight: there is nothing for eq. 21's target to steer"
            if chosen == 0
            else "equation (6) was not fitted (no course embeddings): there is no level term to steer"
        )
        context.log.warning(reason)
        return MaterializeResult(metadata={"skipped": reason})
    with warehouse.get_connection() as con:
        scale = ingest.source_info(con)["rating_scale"]
        data, train = read_train(con, scale)
        relevant = held_out(con, data, "test", scale)
        steering, unsteered_valid, carve = _tuned_steering(con, data, train, home.models, config, scale)
        del train
        state = state_by_week(con)
        tags = run_tags(context, con)
    home.models.save(
        DIFFICULTY_STEERING,
        SteeringChoice(steering.delta, steering.theta, steering.valid_ndcg, unsteered_valid),
    )
    context.log.info(
        f"eq. 21 tuned on validation ({carve}): delta {steering.delta}, theta {steering.theta}, "
        f"nDCG@10 {steering.valid_ndcg:.4f} (unsteered {unsteered_valid:.4f})"
    )
    targets = {
        "configured": state.groupby("learner_id")["target_difficulty"].last(),
        "tuned": last_targets(state, steering.delta, steering.theta),
    }
    steered = {name: t.reindex(data.learner_ids).to_numpy(float) for name, t in targets.items()}
    tracker = tracking.tracker()
    scored = sample_learners(relevant, SCORED_LEARNERS)  # the learners train_and_track scores
    results, runs, per = {}, {}, {}
    for name, steer in (("hybrid_eq6_level", None), ("hybrid_eq21", steered["tuned"])):
        model = fitted_equation6(home.models, data, name=name, targets=steer)
        results[name], runs[name] = train_and_track(
            model,
            data,
            relevant,
            tracker,
            tags,
            {
                "alpha": model.alpha,
                "level_weight": model.level_weight,
                "targets": "learner labels" if steer is None else "eq. 21",
                "delta": steering.delta,
                "theta": steering.theta,
            },
            fit=False,
        )
        per[name] = _ndcg(model, scored)
    configured = float(
        _ndcg(fitted_equation6(home.models, data, targets=steered["configured"]), scored).mean()
    )
    keys = ("precision@10", "recall@10", "ndcg@10", "map@10")
    table = pd.DataFrame([{"model": n, **{k: round(m[k], 4) for k in keys}} for n, m in results.items()])
    gain = results["hybrid_eq21"]["ndcg@10"] - results["hybrid_eq6_level"]["ndcg@10"]
    test = paired_ttest(per["hybrid_eq21"], per["hybrid_eq6_level"])
    return MaterializeResult(
        metadata={
            "test_metrics": markdown_table(table),
            "ndcg@10_gain_of_eq21": round(gain, 4),
            "eq21_helps_on_test": bool(gain > 0 and test["p"] < 0.05),
            "paired_ttest_vs_unsteered": MetadataValue.json({k: round(float(v), 4) for k, v in test.items()}),
            "tuned_delta": steering.delta,
            "tuned_theta": steering.theta,
            "validation_ndcg@10": MetadataValue.json(
                {"eq21_tuned": round(steering.valid_ndcg, 4), "unsteered": round(unsteered_valid, 4)}
            ),
            "validation_grid": markdown_table(steering.grid.round(4)),
            "validation_carve": carve,
            "test_ndcg@10_eq21_configured": round(configured, 4),
            "mlflow_runs": MetadataValue.json(runs),
        }
    )


class PeerSettings(Config):
    """Mirrors :class:`coursepilot.peers.ranking.PeerConfig`, whose defaults it takes. The weights are one
    point of the validation grid, and stay when validation has no learner to score."""

    k: int = PeerConfig.k
    interaction_weight: float = PeerConfig.interaction_weight
    profile_weight: float = PeerConfig.profile_weight
    level_weight: float = PeerConfig.level_weight
    activity_weight: float = PeerConfig.activity_weight
    neighbour_clusters: int = PeerConfig.neighbour_clusters
    max_candidates: int = PeerConfig.max_candidates
    active_candidates: int = PeerConfig.active_candidates
    seed: int = PeerConfig.seed
    validation_share: float = 0.2
    retune: bool = True  # False (the nightly job): keep the weights the last tuning chose
    # False (the nightly job): score only the served hybrid peers on test; the three baselines and the t-tests
    # (the report's peer table) are the full run's
    compare: bool = True
    # rank again only learners whose inputs changed, whose cluster moved or who lost a peer; the others keep
    # their stored peers
    incremental: bool = True

    def peer_config(self, weights: dict[str, float] | None = None) -> PeerConfig:
        fields = self.model_dump(exclude={"validation_share", "retune", "compare", "incremental"})
        return PeerConfig(**{**fields, **{f"{term}_weight": w for term, w in (weights or {}).items()}})


def _chosen_weights(
    context: AssetExecutionContext,
    con,
    config: PeerSettings,
    store: ModelStore,
    profiles,
    courses: np.ndarray,
    clusters: dict,
) -> tuple[PeerTuning, str]:
    """(the tuning whose weights rank the peers, where it comes from): the last run's under ``retune=False``
    when there is one, else a grid search on the validation carve of ``train`` (never test)."""
    last = None if config.retune else store.last(PEER_WEIGHTS)
    if last is not None:
        tuning, source = last, "the last tuning (retune=False)"
    else:
        sample, labels = tuning_sample(profiles, clusters["labels"], seed=config.seed)
        train = train_with_courses(con, None if sample is profiles else sample.ids)
        validation = peer_validation(
            train,
            sample,
            courses,
            CourseSide.read(con, courses),
            ingest.source_info(con)["rating_scale"],
            config.validation_share,
            config.seed,
        )
        tuning = tune_weights(validation, labels, clusters["centroids"], config.peer_config())
        source = "the validation grid"
    context.log.info(
        f"peer weights {tuning.weights} from {source}: validation nDCG@10 {tuning.valid_ndcg:.4f}; "
        f"each term alone {tuning.alone}; baselines {tuning.baselines}"
    )
    return tuning, source


def _tuning_table(tuning: PeerTuning) -> MetadataValue:
    """Validation nDCG@10 of the tuned weights, of each term alone and of the baselines, on the same
    learners."""
    rows = [
        ("hybrid_peers (tuned)", tuning.valid_ndcg),
        *((f"{term} alone", v) for term, v in tuning.alone.items()),
        *tuning.baselines.items(),
    ]
    return markdown_table(pd.DataFrame(rows, columns=["ranking", "ndcg@10"]).round(4))


@asset(
    group_name=GROUP,
    kinds={"duckdb", "mlflow"},
    deps=[peer_clusters],
    description="Top-k peers per learner from their cluster, the nearest ones and the most active learners, "
    "with reasons; term weights tuned on a validation carve of train; evaluated against three "
    "baselines (the nightly job, compare=False: the served peers alone).",
)
def peer_recommendations(
    context: AssetExecutionContext,
    config: PeerSettings,
    warehouse: WarehouseResource,
    home: ProjectHomeResource,
    tracking: TrackingResource,
) -> MaterializeResult:
    clusters = home.models.arrays(PEER_CENTROIDS)
    ranked_with = home.models.arrays(PEER_POOLS)["centroids"] if home.models.last(PEER_POOLS) else None
    with warehouse.get_connection() as con:
        profiles = load_profiles(con)
        ids = profiles.ids
        courses = course_ids(con)
        train, test = (split_matrix(con, (split,), ids, courses, None) for split in ("train", "test"))
        proficiency, jobs = last_proficiency(con, ids), profile_jobs(con)
        tuning, source = _chosen_weights(context, con, config, home.models, profiles, courses, clusters)
        peer_config = config.peer_config(tuning.weights)
        update = peers_to_rank(
            con,
            ids,
            clusters["labels"],
            clusters["centroids"],
            ranked_with,
            str(asdict(peer_config)),
            config.incremental,
        )
        peers = hybrid_peers(
            train,
            profiles,
            proficiency,
            clusters["labels"],
            clusters["centroids"],
            jobs,
            peer_config,
            update.rows,
        )
        table = update.store(con, ids, peers)
        # the evaluation and the baselines rank only the learners it scores
        scored = scored_candidates(test, seed=config.seed)
        if update.rows is not None:
            peers = stored_peers(con, ids, scored)
        stored, tags = row_count(con, "peer_recommendations"), run_tags(context, con)
    home.models.save(PEER_WEIGHTS, tuning)
    reference = update.reference(ranked_with, clusters["centroids"])
    home.models.save(PEER_POOLS, {"k": len(reference)}, {"centroids": reference})

    # the scored learners' (everyone's when all were ranked tonight): evaluate_peers scores only them
    rankings = {"hybrid_peers": ranked_matrix(peers, config.k)}
    if config.compare:
        rankings |= {
            "cf_peers": cf_peers(train, config.k, scored),
            "cluster_random": cluster_random_peers(clusters["labels"], config.k, config.seed, scored),
            "active_peers": active_peers(train, config.k, scored),
        }
    keys = ("precision@5", "precision@10", "recall@10", "ndcg@10", "map@10")
    scores, per, evaluated = evaluate_peers(test, rankings, seed=config.seed)
    results = {name: {k: v for k, v in m.items() if k in keys} for name, m in scores.items()}
    tests = {
        name: paired_ttest(per["hybrid_peers"], per[name])
        for name in rankings
        if name != "hybrid_peers" and len(per[name]) >= 2
    }
    if config.compare and not tests:
        context.log.warning(
            f"peer t-tests skipped: {len(per['hybrid_peers'])} learner(s) to score, a paired t-test needs two"
        )
    if config.compare:  # what the report's peer table shows
        home.models.save(PEER_METRICS, PeerMetrics(results, tests, tuning.weights))
    tracker = tracking.tracker()
    with tracker.run("peer_recommendations", {**tags, "model": "hybrid_peers"}):
        tracker.mlflow.log_params({**config.model_dump(), **asdict(config.peer_config(tuning.weights))})
        test_metrics = {
            f"{name}_{k.replace('@', '_at_')}": v for name, m in results.items() for k, v in m.items()
        }
        tracker.mlflow.log_metrics({"validation_ndcg_at_10": tuning.valid_ndcg, **test_metrics})
        tracker.log_dict({"paired_ttests_ndcg_at_10": tests}, "significance.json")
    metrics = pd.DataFrame(
        [{"model": n, **{k: round(v, 4) for k, v in m.items()}} for n, m in results.items()]
    )
    significance = pd.DataFrame(
        [
            {"vs": n, **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in t.items()}}
            for n, t in tests.items()
        ]
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": stored,
            **update.metadata(),
            "evaluated_learners": evaluated,
            "peer_metrics": markdown_table(metrics),
            "paired_ttests_ndcg@10": markdown_table(significance)
            if tests
            else "skipped: fewer than two learners to score"
            if config.compare
            else "not run (compare=False): the full run compares",
            "weights": MetadataValue.json(tuning.weights),
            "weights_from": source,
            "validation_ndcg@10": round(tuning.valid_ndcg, 4),
            "validation_learners": tuning.learners,
            "validation_ndcg@10_by_ranking": _tuning_table(tuning),
            "example": markdown_table(table.head(10)),
        }
    )
