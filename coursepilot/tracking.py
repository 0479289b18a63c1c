"""MLflow tracking under the project home: one run per trained model, with lineage tags."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .home import ProjectHome
from .imports import IMPORTING

EXPERIMENT = "coursepilot"
REPO_ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """The checked-out commit of the code that trains, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# not MLFLOW_TRACKING_URI: mlflow.set_tracking_uri() writes that variable itself, so it would carry one
# project home's store into the next home used in the same process (or its subprocesses)
TRACKING_ENV = "COURSEPILOT_MLFLOW_URI"


def tracking_uri(home: ProjectHome) -> str:
    """``$COURSEPILOT_MLFLOW_URI`` when set (a PostgreSQL store or a tracking server), else
    ``<home>/mlflow.db``."""
    return os.environ.get(TRACKING_ENV) or f"sqlite:///{home.mlflow_db}"


def redact(uri: str) -> str:
    """``uri`` with any password replaced by ``***``, for printing."""
    parts = urlsplit(uri)
    if not parts.password:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class Tracker:
    """Runs in the store of :func:`tracking_uri`; artifacts under ``<home>/mlartifacts`` unless a server keeps
    them."""

    def __init__(self, home: ProjectHome, experiment: str = EXPERIMENT):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        home.ensure()
        self.uri = tracking_uri(home)
        # a tracking server has its own artifact store (--default-artifact-root / --artifacts-destination)
        artifacts = None if self.uri.startswith(("http://", "https://")) else home.mlflow_artifacts.as_uri()
        # the first store MLflow opens imports SQLAlchemy's ORM, and two steps may both make a Tracker
        with IMPORTING:
            import mlflow

            self.mlflow = mlflow
            mlflow.set_tracking_uri(self.uri)
            found = mlflow.get_experiment_by_name(experiment)
            self.experiment_id = (
                found.experiment_id
                if found
                else mlflow.create_experiment(experiment, artifact_location=artifacts)
            )

    @contextmanager
    def run(self, name: str, tags: dict[str, str] | None = None):
        """An MLflow run tagged with the git commit and the caller's lineage tags."""
        all_tags = {"git_commit": git_commit(), **(tags or {})}
        with IMPORTING:  # a process's first run imports GitPython (MLflow tags the source's commit)
            active = self.mlflow.start_run(experiment_id=self.experiment_id, run_name=name, tags=all_tags)
        with active as run:
            yield run

    def log_sklearn(self, model, name: str = "model") -> None:
        """Log a model we trained ourselves; its own sklearn types are trusted by skops on load."""
        import sklearn

        with IMPORTING:  # skops, and MLflow's model logging, import lazily
            import skops.io

            trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
            self.mlflow.sklearn.log_model(
                model,
                name=name,
                skops_trusted_types=trusted,
                pip_requirements=[f"scikit-learn=={sklearn.__version__}", "skops"],
            )

    def log_dict(self, data: dict, file: str) -> None:
        self.mlflow.log_dict(data, file)


def log_classifier(
    tracker: Tracker, name: str, model, params: dict, scores: dict, tags: dict[str, str]
) -> str:
    """One MLflow run for a trained classifier: params, ``<split>_<metric>`` metrics, confusion matrices,
    model."""
    with tracker.run(name, tags) as run:
        tracker.mlflow.log_params(params)
        for split, score in scores.items():
            tracker.mlflow.log_metrics({f"{split}_accuracy": score.accuracy, f"{split}_f1": score.f1})
            tracker.log_dict(
                {
                    "rows": "true negative/positive",
                    "columns": "predicted negative/positive",
                    "matrix": score.confusion,
                },
                f"confusion_{split}.json",
            )
        tracker.log_sklearn(model)
        return run.info.run_id
