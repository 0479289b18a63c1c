"""The coursepilot code location (loaded by ``workspace.yaml`` and ``dagster dev``)."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    ExecutorDefinition,
    define_asset_job,
    in_process_executor,
    load_assets_from_modules,
    multiprocess_executor,
)

from assets import (
    COMPARISON,
    checks,
    courses,
    evaluation,
    learners,
    peers,
    profiles,
    recommenders,
    source_data,
    split,
)
from coursepilot.home import ProjectHome
from pipelines.schedules import nightly_schedule, weekly_schedule
from pipelines.sensors import source_change_sensor
from pipelines.settings import EXECUTOR_ENV, Settings
from pipelines.threads import thread_executor
from resources import (
    DatasetResource,
    EmbedderResource,
    ProjectHomeResource,
    TrackingResource,
    warehouse_resource,
)

STAGES = (source_data, split, learners, courses, profiles, recommenders, peers, evaluation)
"""The asset modules, one per stage, in the order of the graph."""
ASSETS = load_assets_from_modules(STAGES)
COMPARISONS = AssetSelection.tag("role", COMPARISON["role"])
"""Assets that exist to measure and compare (tagged ``COMPARISON``): the full job (weekly) only."""
KEPT_TUNING = (
    recommenders.als_model,
    recommenders.hybrid_model,
    peers.peer_clusters,
    learners.learner_labels,
    peers.peer_recommendations,
)
"""Assets whose ``retune: false`` the nightly sets: they keep the settings the last tuning chose."""

FULL_JOB, NIGHTLY_JOB = "full_pipeline", "nightly_retrain"
EXECUTORS = ("in_process", "threads", "multiprocess", "k8s", "celery")
KEEP_TUNING = {"retune": False}
NIGHTLY_CONFIG = {
    **{asset.op.name: {"config": KEEP_TUNING} for asset in KEPT_TUNING},
    # the served peers only: the baselines and t-tests are the weekly full run's
    peers.peer_recommendations.op.name: {"config": {**KEEP_TUNING, "compare": False}},
}

# the weekly full run recomputes every learner's split, state, profile and peers, whatever their fingerprints
# say (a code change their versions missed cannot outlive a week), and clusters every window in a space fitted
# again
FULL_CONFIG = {
    asset.op.name: {"config": {"incremental": False}}
    for asset in (
        source_data.cleaned_tables,
        split.split,
        peers.learner_state,
        profiles.learner_profiles,
        peers.peer_clusters,
        peers.peer_recommendations,
    )
}
full_pipeline = define_asset_job(
    FULL_JOB,
    selection=AssetSelection.all(),
    config={"ops": FULL_CONFIG},
    description="Materialize the whole asset graph, checks included: tuning, every comparison "
    "model, the evaluation report, every raw row cleaned and every learner's split, state and profile from "
    "scratch.",
)
nightly_retrain = define_asset_job(
    NIGHTLY_JOB,
    selection=AssetSelection.all() - COMPARISONS,
    config={"ops": NIGHTLY_CONFIG},
    description="The serving path on the newest data: cleaned tables, labels, embeddings (new texts only), "
    "ALS and the hybrid with the last tuned settings (their factor models from the last factors), the "
    "learner classifier the last run chose, the registered model through the gate, peer groups and peers "
    "(no baselines); the split, learner state and profiles only for learners whose inputs changed. Tunes "
    "from scratch where no earlier run left settings.",
)


def executor(name: str) -> ExecutorDefinition:
    """The step executor called ``name`` (``Settings.executor``: ``$COURSEPILOT_EXECUTOR``, default
    ``threads``).

    The DuckDB warehouse allows a single writing process (and no reader in another process while it
    writes). ``threads`` runs independent steps side by side in the run's process (``pipelines.threads``),
    the longest chain first; ``in_process`` runs them one at a time there. The others give each step its
    own process (multiprocess), Kubernetes job (dagster-k8s) or Celery task (dagster-celery), so they run
    one step at a time; the last two need the project home on a volume every step can mount. See
    deploy/README.md.
    """
    if name == "in_process":
        return in_process_executor
    if name == "threads":
        return thread_executor
    if name == "multiprocess":
        return multiprocess_executor.configured({"max_concurrent": 1}, name="multiprocess")
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured({"max_concurrent": 1}, name="k8s_job")
    if name == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(
            {
                "broker": {"env": "CELERY_BROKER_URL"},
                "backend": {"env": "CELERY_RESULT_BACKEND"},
                "config_source": {"worker_concurrency": 1},
            },
            name="celery",
        )
    raise ValueError(f"{EXECUTOR_ENV}={name!r}: choose one of {', '.join(EXECUTORS)}")


def build_definitions(
    home: ProjectHome | None = None,
    dataset: DatasetResource | None = None,
    loggers: dict | None = None,
    settings: Settings | None = None,
) -> Definitions:
    """Definitions for a project home, a data source and deployment settings (defaults: environment, then
    built-ins).

    Steps of a run share one process or run one at a time (see :func:`executor`), and the run queue in
    ``dagster.yaml`` runs one run at a time, so the warehouse is never written by two processes at once.
    """
    home = home or ProjectHome.resolve()
    dataset = dataset or DatasetResource.from_env()
    settings = settings or Settings.from_env()
    project_home = ProjectHomeResource(root=str(home.root))
    return Definitions(
        assets=ASSETS,
        asset_checks=[*checks.DATA_CHECKS, checks.champion_freshness(settings.max_model_age_hours)],
        jobs=[full_pipeline, nightly_retrain],
        schedules=[
            nightly_schedule(nightly_retrain, settings.nightly_cron, settings.timezone),
            weekly_schedule(full_pipeline, settings.weekly_cron, settings.timezone),
        ],
        sensors=[source_change_sensor(full_pipeline, dataset)],
        resources={
            "dataset": dataset,
            "warehouse": warehouse_resource(home),
            "home": project_home,
            "embedder": EmbedderResource(home=project_home),
            "tracking": TrackingResource(home=project_home),
        },
        executor=executor(settings.executor),
        loggers=loggers,
    )


defs = build_definitions()
