"""Fit a recommender, score it on the test split and record both as an MLflow run."""

from __future__ import annotations

import time

from .evaluation.protocol import evaluate
from .models.base import Recommender, TrainData
from .sampling import SCORED_LEARNERS
from .tracking import Tracker


def train_and_track(
    model: Recommender,
    data: TrainData,
    relevant: dict,
    tracker: Tracker,
    tags: dict[str, str],
    params: dict,
    fit: bool = True,
) -> tuple[dict[str, float], str]:
    """(test metrics, MLflow run id). ``fit=False`` records an already fitted model."""
    started = time.perf_counter()
    if fit:
        model.fit(data)
    seconds = time.perf_counter() - started
    metrics = evaluate(model, relevant)
    with tracker.run(model.name, {**tags, "model": model.name}) as run:
        tracker.mlflow.log_params(
            {
                **params,
                "learners": data.shape[0],
                "courses": data.shape[1],
                "train_interactions": int(data.matrix.nnz),
            }
        )
        tracker.mlflow.log_metrics(
            {
                "fit_seconds": seconds,
                "test_learners": len(relevant),
                "scored_learners": min(len(relevant), SCORED_LEARNERS),
                **{f"test_{k.replace('@', '_at_')}": v for k, v in metrics.items()},
            }
        )
        return metrics, run.info.run_id
