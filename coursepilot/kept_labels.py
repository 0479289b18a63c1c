"""Learner labels between full runs: the classifier the last full run fitted is kept with its normalisation,
and the nightly labels with it only the learners whose features changed (:mod:`coursepilot.changes`).

A kept learner's label is what the kept classifier gave them (out of sample for its training sample). A
changed or new learner's features are normalised with the kept bounds (equation (1) with the minima and
maxima the classifier was trained on, so a value outside them falls outside 0-1) and labelled by the kept
classifier; their training label is the ground truth, or the threshold rule with the kept threshold. A
changed learner who was in the classifier's training sample is labelled by a model that saw their earlier
features (not out of sample, unlike the full run). The weekly full run fits the classifier again on everyone.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .changes import Changes, kept_rows, learner_changes
from .features import FEATURES, INPUTS, FeatureTable
from .imports import IMPORTING
from .labels import LearnerLabels, p_adaptive
from .warehouse import columns, table_exists

TABLE = "learner_labels"
VERSION = 1


@dataclass
class KeptClassifier:
    """A fitted learner classifier with what labelling new rows needs."""

    model: object
    name: str  # "rf" or "svm"
    features: list[str]
    low: list[float]  # each feature's minimum and maximum over the learners it was normalised on
    high: list[float]
    threshold: float | None  # the rule's threshold; None with ground truth
    key: str  # identifies this fit: part of every fingerprint, so a new fit relabels everyone

    @classmethod
    def of(cls, result: LearnerLabels, features: FeatureTable) -> "KeptClassifier":
        raw = features.raw[result.features]
        return cls(
            result.models[result.chosen],
            result.chosen,
            list(result.features),
            raw.min().tolist(),
            raw.max().tolist(),
            result.threshold,
            uuid.uuid4().hex,
        )

    def save(self, folder: Path) -> None:
        """Write into ``folder`` (a model store folder): the model as skops, the rest as JSON."""
        with IMPORTING:
            import skops.io

        skops.io.dump(self.model, folder / "model.skops")
        fields = {k: v for k, v in vars(self).items() if k != "model"}
        (folder / "classifier.json").write_text(json.dumps(fields, indent=2))

    @classmethod
    def load(cls, folder: Path) -> "KeptClassifier | None":
        """What :meth:`save` wrote (None when nothing was); the model's types are our own, so they are
        trusted."""
        with IMPORTING:
            import skops.io

        path = folder / "model.skops"
        if not (folder / "classifier.json").exists():
            return None
        model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
        return cls(model=model, **json.loads((folder / "classifier.json").read_text()))

    def normalised(self, raw: pd.DataFrame) -> np.ndarray:
        """Equation (1) with the kept bounds (a constant feature maps to 0, a missing value stays missing)."""
        low, high = np.array(self.low), np.array(self.high)
        span = np.where(high > low, high - low, np.inf)
        return (raw[self.features].to_numpy(dtype=float) - low) / span

    def context(self, scope: str) -> str:
        return f"labels v{VERSION} classifier {self.key} {scope}"


def inputs_sql(con) -> str:
    """Per learner, what their label depends on: the fingerprint of the rows their features were computed
    from (:data:`~coursepilot.features.INPUTS`, stored with the features) and their ground truth where the
    source has one. Features stored by code before :data:`~coursepilot.features.INPUTS` existed have no
    fingerprint: every learner then counts as changed."""
    truth = table_exists(con, "truth_learners")
    fingerprint = f"f.{INPUTS}" if INPUTS in columns(con, "learner_features") else f"NULL AS {INPUTS}"
    return f"SELECT f.learner_id, {fingerprint}{', t.adaptive' if truth else ''} FROM learner_features f" + (
        " LEFT JOIN truth_learners t USING (learner_id)" if truth else ""
    )


def label_changes(con, kept: KeptClassifier | None, scope: str, incremental: bool = True) -> Changes:
    """The learners whose feature inputs changed since the labels were stored with ``kept`` (None: no
    classifier was fitted, and the next run labels everyone) under ``scope`` (the rating scale and the label
    settings: a change relabels everyone)."""
    context = kept.context(scope) if kept else "no classifier"
    return learner_changes(con, TABLE, inputs_sql(con), context, incremental)


def relabelled(
    con, features: FeatureTable, kept: KeptClassifier, changes: Changes, truth: pd.Series | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the labels of the changed learners by ``kept``, the stored labels of the others)."""
    raw = features.raw[features.raw["learner_id"].isin(changes.changed)]
    ids = raw["learner_id"].to_numpy()
    X = kept.normalised(raw)
    proba = p_adaptive(kept.model, X) if len(ids) else np.zeros(0)
    if truth is not None:
        known = truth.reindex(ids)
        if known.isna().any():  # as label_learners says it
            raise ValueError(f"ground truth is missing for {int(known.isna().sum())} learners")
        training = known.to_numpy(dtype=bool)
    else:
        performance = [f.name for f in FEATURES if f.performance and f.name in kept.features]
        at = [kept.features.index(name) for name in performance]
        # as the rule scores everyone: the mean of the known performance features
        training = (pd.DataFrame(X[:, at]).mean(axis=1, skipna=True) > kept.threshold).to_numpy()
    fresh = pd.DataFrame(
        {"learner_id": ids, "adaptive": proba > 0.5, "p_adaptive": proba, "training_label": training}
    )
    return fresh, kept_rows(con, TABLE, changes)
