"""The serving recommender: an MLflow pyfunc model registered as ``coursepilot-recommender``.

Input: a DataFrame with ``learner_id`` (a known learner) and/or ``profile`` (free text for a new
learner: job, software, themes or a sentence of interests) and optional ``k``. Output: one row per
recommendation: ``query`` (input row), ``learner_id``, ``rank``, ``course_id``, ``title``,
``score`` and ``reason``; the pyfunc (``serving_pyfunc``) adds ``source`` and ``error`` and answers each row
on its own. Loading it needs MLflow and this package, not Dagster.

The bundle holds plain arrays (``.npz`` without pickles) and Parquet tables, nothing executable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .home import ProjectHome
from .imports import IMPORTING
from .models.base import TrainData
from .models.catalogue import build
from .models.cold_start import DEFAULT_POPULARITY, blend, popularity
from .models.explain import Reason, explain
from .models.fusion import Fusion
from .models.store import flatten_arrays, unflatten_arrays
from .ranking import top_k
from .tracking import tracking_uri

MODEL_NAME = "coursepilot-recommender"
REASONS = {
    "ease": "learners who took “{evidence}” also took this",
    "item_knn": "learners who took “{evidence}” also took this",
    "als": "learners with tastes like yours took it (like “{evidence}”)",
    "bpr": "learners with tastes like yours took it (like “{evidence}”)",
    "content_minilm": "similar to “{evidence}” you took",
    "content_tfidf": "similar to “{evidence}” you took",
    "peer_group": "your peer group takes it ({share:.0%} of {group_size:,} peers)",
    "popularity": "popular with many learners",
    "trending": "popular now",
    "level": "at your next level",
}


def save_bundle(
    folder: Path,
    data: TrainData,
    titles,
    fusion: Fusion,
    params: dict[str, dict],
    cold_start_popularity: float = DEFAULT_POPULARITY,
) -> Path:
    """Write everything the serving model needs into ``folder``: the training data it scores from, each fusion
    component's fitted arrays (``<component>.<array>``) and, in ``fusion.json``, the weights and
    parameters."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "seen": data.matrix,
        "course_vectors": data.course_vectors,
        "course_tfidf": data.course_tfidf,
        "difficulty": data.difficulty,
        "p_adaptive": data.p_adaptive,
        "p_intensive": data.p_intensive,
        "times": data.times
        if any(getattr(m, "recency", 0) > 0 for m in fusion.components.values())
        else None,
    }
    for name, model in fusion.components.items():
        arrays.update({f"{name}.{key}": value for key, value in model.state().items()})
    np.savez(folder / "arrays.npz", **flatten_arrays({k: v for k, v in arrays.items() if v is not None}))
    (folder / "fusion.json").write_text(
        json.dumps(
            {"weights": fusion.weights, "params": params, "cold_start_popularity": cold_start_popularity},
            indent=2,
        )
    )
    pd.DataFrame({"learner_id": pd.Series(data.learner_ids, dtype=str)}).to_parquet(
        folder / "learners.parquet"
    )
    pd.DataFrame(
        {"course_id": pd.Series(data.course_ids, dtype=str), "title": pd.Series(titles, dtype=str)}
    ).to_parquet(folder / "courses.parquet")
    return folder


class ServingModel:
    """Scores and explains recommendations from a bundle with the pipeline's own model classes."""

    home: ProjectHome | None = None  # whose MiniLM ONNX export encodes profiles (None: $COURSEPILOT_HOME)

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
            arrays = unflatten_arrays(npz)
        self.learner_ids = pd.Index(pd.read_parquet(folder / "learners.parquet")["learner_id"])
        courses = pd.read_parquet(folder / "courses.parquet")
        self.course_ids, self.titles = courses["course_id"].to_numpy(), courses["title"].to_numpy()
        self.data = TrainData(
            self.learner_ids.to_numpy(),
            self.course_ids,
            arrays["seen"],
            arrays.get("course_vectors"),
            arrays.get("course_tfidf"),
            arrays["difficulty"],
            arrays.get("p_adaptive"),
            times=arrays.get("times"),
            p_intensive=arrays.get("p_intensive"),
        )
        spec = json.loads((folder / "fusion.json").read_text())
        components = {
            m: build(m, spec["params"].get(m)).restore(
                self.data, {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith(f"{m}.")}
            )
            for m in spec["weights"]
        }
        self.fusion = Fusion(components, spec["weights"]).fit(self.data, fit_parts=False)
        self.cold_start_popularity = spec["cold_start_popularity"]
        self.popularity = popularity(self.data)

    def known(self, learner_id: str) -> int:
        row = self.learner_ids.get_indexer([str(learner_id)])[0]
        if row < 0:
            raise KeyError(f"unknown learner {learner_id!r}; a new learner needs a profile text")
        return int(row)

    def for_learner(self, learner_id: str, k: int = 10) -> pd.DataFrame:
        row = self.known(learner_id)
        taken = self.data.matrix[row].indices
        k = min(k, len(self.course_ids) - len(taken))
        parts = self.fusion.parts(np.array([row]))  # scored once: the ranking, the scores and the reasons
        scores = sum(parts.values())[0]
        ranked = scores.astype(np.float64)
        ranked[taken] = -np.inf
        top = top_k(ranked[None, :], k)[0] if k > 0 else np.array([], dtype=np.int64)
        reasons = [self._text(r) for r in explain(self.fusion, row, top, parts)]
        return self._frame(top, scores[top], reasons, learner_id)

    def _text(self, reason: Reason) -> str:
        evidence = self.titles[reason.evidence] if reason.evidence >= 0 else ""
        template = REASONS.get(reason.component, "recommended for you")
        if "{evidence}" in template and not evidence:
            return "learners with tastes like yours took it"
        return template.format(evidence=evidence, share=reason.share, group_size=reason.group_size)

    def for_profile(self, profile_vector: np.ndarray, k: int = 10) -> pd.DataFrame:
        """A new learner known only by a profile embedding: profile similarity blended with popularity (the
        weight chosen on validation, ``cold_start.tune_blend``)."""
        score = blend(profile_vector, self.data.course_vectors, self.popularity, self.cold_start_popularity)[
            0
        ]
        top = top_k(score[None, :], min(k, len(score)))[0]
        return self._frame(top, score[top], ["matches your profile"] * len(top), None)

    def _frame(self, top, scores, reasons, learner_id) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "learner_id": learner_id,
                "rank": np.arange(1, len(top) + 1),
                "course_id": self.course_ids[top],
                "title": self.titles[top],
                "score": np.asarray(scores, dtype=float),
                "reason": reasons,
            }
        )

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        from .embeddings import embed_texts

        out = []
        for query, row in enumerate(frame.to_dict("records")):
            k = int(row.get("k") or 10)
            learner, profile = row.get("learner_id"), row.get("profile")
            if isinstance(learner, str) and learner and learner in self.learner_ids:
                result = self.for_learner(learner, k)
            elif isinstance(profile, str) and profile.strip():
                folder = serving_onnx_folder(self.home)
                backend = "torch" if folder is None else "onnx"
                vector = embed_texts([profile], backend=backend, onnx_folder=folder)[0]
                result = self.for_profile(vector, k).assign(learner_id=learner or None)
            else:
                self.known(learner)  # raises the clear unknown-learner error
                raise ValueError(f"input row {query} has neither a learner_id nor a profile")
            out.append(result.assign(query=query))
        return pd.concat(out, ignore_index=True)[
            ["query", "learner_id", "rank", "course_id", "title", "score", "reason"]
        ]


def serving_onnx_folder(home: ProjectHome | None = None) -> str | None:
    """The folder of MiniLM ONNX exports of ``home`` (default: the resolved project home) when it holds this
    model version's export (the pipeline made it): a profile is encoded by it (the same vectors as torch,
    about 10x faster one text at a time); else None, and sentence-transformers encodes (no export delays a
    request)."""
    from .minilm import MODEL_NAME
    from .onnx_encoder import model_files

    folder = (home or ProjectHome.resolve()).embeddings / "onnx"
    return str(folder) if model_files(MODEL_NAME, folder)[0].is_file() else None


EXAMPLE_PROFILE = "data analyst who uses Python and SQL"


def log_serving_model(bundle: Path) -> object:
    """Log the bundle as a pyfunc model (from code, no pickle) in the active run and register a new version.

    The input example is a profile text, not a learner of the data: no learner data goes into the model's
    files.
    """
    with IMPORTING:  # not around log_model: it checks the input example with predict, which waits to encode
        import mlflow
        import mlflow.pyfunc
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

    example = pd.DataFrame({"learner_id": [""], "profile": [EXAMPLE_PROFILE], "k": [3]})
    signature = ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", "learner_id", required=False),
                ColSpec("string", "profile", required=False),
                ColSpec("long", "k", required=False),
            ]
        ),
        outputs=Schema(
            [
                ColSpec("long", "query"),
                ColSpec("string", "learner_id", required=False),
                ColSpec("string", "source"),
                *(
                    ColSpec(kind, name, required=False)
                    for kind, name in (
                        ("long", "rank"),
                        ("string", "course_id"),
                        ("string", "title"),
                        ("double", "score"),
                        ("string", "reason"),
                        ("string", "error"),
                    )
                ),
            ]
        ),
    )
    info = mlflow.pyfunc.log_model(
        name="recommender",
        python_model=str(Path(__file__).with_name("serving_pyfunc.py")),
        artifacts={"bundle": str(bundle)},
        signature=signature,
        input_example=example,
        registered_model_name=MODEL_NAME,
        pip_requirements=[
            "mlflow",
            "pandas",
            "pyarrow",
            "scipy",
            "numpy",
            "scikit-learn",
            "threadpoolctl",
            "sentence-transformers",
        ],
    )
    return info


def load_recommender(alias: str = "champion", home: ProjectHome | None = None, uri: str | None = None):
    """The registered recommender (``models:/coursepilot-recommender@<alias>`` unless ``uri`` is given); new
    learners' profiles are encoded by ``home``'s ONNX export when it has one."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    home = home or ProjectHome.resolve()
    mlflow.set_tracking_uri(tracking_uri(home))
    model = mlflow.pyfunc.load_model(uri or f"models:/{MODEL_NAME}@{alias}")
    model.unwrap_python_model().model.home = home
    return model


def champion_version(client) -> str | None:
    try:
        return str(client.get_model_version_by_alias(MODEL_NAME, "champion").version)
    except Exception:  # noqa: BLE001 - MLflow raises a generic RestException when the alias is unset
        return None


def validation_score(client, version: str) -> float | None:
    """The validation nDCG@10 recorded in the run that registered ``version``."""
    run_id = client.get_model_version(MODEL_NAME, version).run_id
    return client.get_run(run_id).data.metrics.get("valid_ndcg_at_10") if run_id else None


def promotion_gate(client, version: str, tolerance: float) -> tuple[bool, str]:
    """Make ``version`` the champion only if its validation nDCG@10 is no worse than the champion's minus
    ``tolerance``.

    Every new version is the ``@challenger`` first. Returns (promoted, reason). Upstream blocking asset
    checks have already stopped the run (and so this call) when any of them failed.
    """
    client.set_registered_model_alias(MODEL_NAME, "challenger", version)
    current = champion_version(client)
    new_score = validation_score(client, version)
    if new_score is None:
        return False, f"version {version} has no validation nDCG@10: not promoted"
    if current is None:
        client.set_registered_model_alias(MODEL_NAME, "champion", version)
        return (
            True,
            f"version {version} is the first with a validation score: champion (nDCG@10 {new_score:.4f})",
        )
    old_score = validation_score(client, current)
    if old_score is not None and new_score < old_score - tolerance:
        return False, (
            f"version {version} kept as challenger: validation nDCG@10 {new_score:.4f} is below the "
            f"champion's (version {current}) {old_score:.4f} minus the tolerance {tolerance}"
        )
    client.set_registered_model_alias(MODEL_NAME, "champion", version)
    return True, (
        f"version {version} promoted: validation nDCG@10 {new_score:.4f} vs champion version {current} "
        f"{'n/a' if old_score is None else f'{old_score:.4f}'} (tolerance {tolerance})"
    )


def promote(client, version: str) -> None:
    """Point ``@champion`` at an existing version by hand (a rollback)."""
    client.get_model_version(MODEL_NAME, str(version))  # raises when the version does not exist
    client.set_registered_model_alias(MODEL_NAME, "champion", str(version))
