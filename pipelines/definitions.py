"""The coursepilot code location (loaded by ``workspace.yaml`` and ``dagster dev``)."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from assets.checks import CHECKS
from assets.courses import course_embeddings, course_labels, similar_courses, tfidf_course_vectors
from assets.evaluation import evaluation_report
from assets.learners import learner_features, learner_labels
from assets.peers import difficulty_steering, learner_state, peer_clusters, peer_recommendations
from assets.profiles import attribute_embeddings, learner_profiles
from assets.recommenders import (als_model, baseline_models, bpr_model, hybrid_model, neural_hybrid_model, rating_models,
                                 recommender)
from assets.source_data import cleaned_tables, raw_tables
from assets.split import split
from coursepilot.home import ProjectHome
from pipelines.schedules import nightly_schedule
from pipelines.sensors import source_change_sensor
from resources import DatasetResource, EmbedderResource, ProjectHomeResource, TrackingResource, warehouse_resource

ASSETS = [raw_tables, cleaned_tables, split, learner_features, learner_labels, course_embeddings, tfidf_course_vectors,
          course_labels, similar_courses, attribute_embeddings, learner_profiles, als_model, bpr_model, baseline_models,
          hybrid_model, neural_hybrid_model, rating_models, recommender, learner_state, peer_clusters, peer_recommendations,
          difficulty_steering, evaluation_report]

FULL_JOB = "full_pipeline"

full_pipeline = define_asset_job(FULL_JOB, selection=AssetSelection.all(),
                                 description="Materialize the whole asset graph, checks included.")


def build_definitions(home: ProjectHome | None = None, dataset: DatasetResource | None = None,
                      loggers: dict | None = None) -> Definitions:
    """Definitions for a project home and a data source (defaults: environment, then built-ins).

    Steps run in one process: DuckDB allows one writing process per file, so the warehouse is never
    written by two steps at once (and the run queue in ``dagster.yaml`` runs one run at a time).
    """
    home = home or ProjectHome.resolve()
    dataset = dataset or DatasetResource.from_env()
    return Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        jobs=[full_pipeline],
        schedules=[nightly_schedule(full_pipeline)],
        sensors=[source_change_sensor(full_pipeline, dataset)],
        resources={
            "dataset": dataset,
            "warehouse": warehouse_resource(home),
            "home": ProjectHomeResource(root=str(home.root)),
            "embedder": EmbedderResource(),
            "tracking": TrackingResource(),
        },
        executor=in_process_executor,
        loggers=loggers,
    )


defs = build_definitions()
