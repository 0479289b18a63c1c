"""The serving recommender: an MLflow pyfunc model registered as ``coursepilot-recommender``.

Input: a DataFrame with ``learner_id`` (a known learner) and/or ``profile`` (free text for a new
learner: job, software, themes or a sentence of interests) and optional ``k``. Output: one row per
recommendation: ``query`` (input row), ``learner_id``, ``rank``, ``course_id``, ``title``,
``score`` and ``reason``. Loading it needs MLflow and this package, not Dagster.

The bundle holds plain arrays (``.npz`` without pickles) and Parquet tables, nothing executable.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from .home import ProjectHome
from .models.base import minmax_rows, top_k
from .tracking import tracking_uri

MODEL_NAME = "coursepilot-recommender"
COLD_START_POPULARITY = 0.2  # weight of popularity next to profile similarity for a new learner


def save_bundle(folder: Path, *, learner_ids, course_ids, titles, seen: sparse.csr_matrix, user_factors, item_factors,
                course_vectors, popularity, level_targets, difficulty, alpha: float, level_weight: float) -> Path:
    """Write everything the serving model needs into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    seen = seen.tocsr()
    np.savez(folder / "arrays.npz", seen_data=seen.data, seen_indices=seen.indices, seen_indptr=seen.indptr,
             user_factors=user_factors, item_factors=item_factors, course_vectors=course_vectors, popularity=popularity,
             level_targets=level_targets, difficulty=difficulty, weights=np.array([alpha, level_weight]))
    pd.DataFrame({"learner_id": pd.Series(learner_ids, dtype=str)}).to_parquet(folder / "learners.parquet")
    pd.DataFrame({"course_id": pd.Series(course_ids, dtype=str), "title": pd.Series(titles, dtype=str)}).to_parquet(folder / "courses.parquet")
    return folder


class ServingModel:
    """Scores and explains recommendations from a bundle (used by the pyfunc wrapper and directly)."""

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        arrays = np.load(folder / "arrays.npz", allow_pickle=False)
        self.learner_ids = pd.Index(pd.read_parquet(folder / "learners.parquet")["learner_id"])
        courses = pd.read_parquet(folder / "courses.parquet")
        self.course_ids, self.titles = courses["course_id"].to_numpy(), courses["title"].to_numpy()
        self.seen = sparse.csr_matrix((arrays["seen_data"], arrays["seen_indices"], arrays["seen_indptr"]),
                                      shape=(len(self.learner_ids), len(self.course_ids)))
        self.user_factors, self.item_factors = arrays["user_factors"], arrays["item_factors"]
        self.course_vectors, self.popularity = arrays["course_vectors"], arrays["popularity"]
        self.level_targets, self.difficulty = arrays["level_targets"], arrays["difficulty"]
        self.alpha, self.level_weight = (float(w) for w in arrays["weights"])
        self.profiles = self.seen @ self.course_vectors
        norms = np.linalg.norm(self.profiles, axis=1, keepdims=True)
        self.profiles = np.divide(self.profiles, norms, out=np.zeros_like(self.profiles), where=norms > 0)

    def known(self, learner_id: str) -> int:
        row = self.learner_ids.get_indexer([str(learner_id)])[0]
        if row < 0:
            raise KeyError(f"unknown learner {learner_id!r}; a new learner needs a profile text")
        return int(row)

    def for_learner(self, learner_id: str, k: int = 10) -> pd.DataFrame:
        row = self.known(learner_id)
        cf = minmax_rows(self.user_factors[[row]] @ self.item_factors.T)[0]
        content = minmax_rows(self.profiles[[row]] @ self.course_vectors.T)[0]
        target = self.level_targets[row]
        level = np.where(self.difficulty >= 0, 1 - np.abs(target - self.difficulty) / 2, 0.5) if np.isfinite(target) else 0.5
        score = self.alpha * cf + (1 - self.alpha) * content + self.level_weight * level
        taken = self.seen[row].indices
        score[taken] = -np.inf
        top = top_k(score[None, :], min(k, len(score) - len(taken)))[0]
        reasons = []
        for c in top:
            if self.alpha * cf[c] >= (1 - self.alpha) * content[c] or not len(taken):
                reasons.append("popular with learners like you")
            else:
                nearest = taken[np.argmax(self.course_vectors[taken] @ self.course_vectors[c])]
                reasons.append(f"similar to “{self.titles[nearest]}” you took")
        return self._frame(top, score[top], reasons, learner_id)

    def for_profile(self, profile_vector: np.ndarray, k: int = 10) -> pd.DataFrame:
        """A new learner known only by a profile embedding: profile similarity plus a little popularity."""
        similarity = minmax_rows(profile_vector[None, :] @ self.course_vectors.T)[0]
        score = (1 - COLD_START_POPULARITY) * similarity + COLD_START_POPULARITY * minmax_rows(self.popularity[None, :])[0]
        top = top_k(score[None, :], min(k, len(score)))[0]
        return self._frame(top, score[top], ["matches your profile"] * len(top), None)

    def _frame(self, top, scores, reasons, learner_id) -> pd.DataFrame:
        return pd.DataFrame({"learner_id": learner_id, "rank": np.arange(1, len(top) + 1), "course_id": self.course_ids[top],
                             "title": self.titles[top], "score": np.asarray(scores, dtype=float), "reason": reasons})

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        from .embeddings import embed_texts

        out = []
        for query, row in enumerate(frame.to_dict("records")):
            k = int(row.get("k") or 10)
            learner, profile = row.get("learner_id"), row.get("profile")
            if isinstance(learner, str) and learner and learner in self.learner_ids:
                result = self.for_learner(learner, k)
            elif isinstance(profile, str) and profile.strip():
                result = self.for_profile(embed_texts([profile])[0], k).assign(learner_id=learner or None)
            else:
                self.known(learner)  # raises the clear unknown-learner error
                raise ValueError(f"input row {query} has neither a learner_id nor a profile")
            out.append(result.assign(query=query))
        return pd.concat(out, ignore_index=True)[["query", "learner_id", "rank", "course_id", "title", "score", "reason"]]


EXAMPLE_PROFILE = "data analyst who uses Python and SQL"


def log_serving_model(bundle: Path) -> object:
    """Log the bundle as a pyfunc model (from code, no pickle) in the active run and register a new version.

    The input example is a profile text, not a learner of the data: no learner data goes into the model's files.
    """
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    example = pd.DataFrame({"learner_id": [""], "profile": [EXAMPLE_PROFILE], "k": [3]})
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", "learner_id", required=False), ColSpec("string", "profile", required=False),
                       ColSpec("long", "k", required=False)]),
        outputs=Schema([ColSpec("long", "query"), ColSpec("string", "learner_id", required=False), ColSpec("long", "rank"),
                        ColSpec("string", "course_id"), ColSpec("string", "title"), ColSpec("double", "score"),
                        ColSpec("string", "reason")]))
    info = mlflow.pyfunc.log_model(name="recommender", python_model=str(Path(__file__).with_name("serving_pyfunc.py")), artifacts={"bundle": str(bundle)},
                                   signature=signature, input_example=example, registered_model_name=MODEL_NAME,
                                   pip_requirements=["mlflow", "pandas", "pyarrow", "scipy", "numpy", "sentence-transformers"])
    return info


def load_recommender(alias: str = "champion", home: ProjectHome | None = None, uri: str | None = None):
    """The registered recommender (``models:/coursepilot-recommender@<alias>`` unless ``uri`` is given)."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    home = home or ProjectHome.resolve()
    mlflow.set_tracking_uri(tracking_uri(home))
    return mlflow.pyfunc.load_model(uri or f"models:/{MODEL_NAME}@{alias}")


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
    """Make ``version`` the champion only if its validation nDCG@10 is no worse than the champion's minus ``tolerance``.

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
        return True, f"version {version} is the first with a validation score: champion (nDCG@10 {new_score:.4f})"
    old_score = validation_score(client, current)
    if old_score is not None and new_score < old_score - tolerance:
        return False, (f"version {version} kept as challenger: validation nDCG@10 {new_score:.4f} is below the champion's "
                       f"(version {current}) {old_score:.4f} minus the tolerance {tolerance}")
    client.set_registered_model_alias(MODEL_NAME, "champion", version)
    return True, (f"version {version} promoted: validation nDCG@10 {new_score:.4f} vs champion version {current} "
                  f"{'n/a' if old_score is None else f'{old_score:.4f}'} (tolerance {tolerance})")


def promote(client, version: str) -> None:
    """Point ``@champion`` at an existing version by hand (a rollback)."""
    client.get_model_version(MODEL_NAME, str(version))  # raises when the version does not exist
    client.set_registered_model_alias(MODEL_NAME, "champion", str(version))
