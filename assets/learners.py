"""Learner stage: performance and engagement features, then adaptive / non-adaptive labels."""

import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from coursepilot import ingest
from coursepilot.changes import inputs_table
from coursepilot.features import learner_features as compute_features
from coursepilot.features import load_features, store_frame
from coursepilot.kept_labels import TABLE, KeptClassifier, label_changes, relabelled
from coursepilot.labels import LearnerLabelConfig, label_learners, truth_labels
from coursepilot.stored import LEARNER_CLASSIFIER, LEARNER_LABELS, LabelChoice
from coursepilot.tracking import log_classifier
from coursepilot.warehouse import Merge, replace_tables
from resources import ProjectHomeResource, TrackingResource, WarehouseResource

from .lineage import run_tags
from .metadata import confusion_table, markdown_table
from .source_data import CLEANED
from .split import split

GROUP = "learners"


@asset(
    group_name=GROUP,
    kinds={"duckdb"},
    deps=[split, CLEANED["courses"]],
    description="Per learner, from training interactions: raw features and their min-max normalised values "
    "(_norm).",
)
def learner_features(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.get_connection() as con:
        features = compute_features(con, ingest.source_info(con)["rating_scale"])
        for name, needs in features.missing.items():
            context.log.info(f"feature {name} left out: the source has no {', '.join(needs)}")
        replace_tables(con, {"learner_features": store_frame(features)})
    summary = (
        features.raw[features.used].describe().T[["mean", "min", "max"]].round(3).reset_index(names="feature")
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(features.raw),
            "features_used": ", ".join(features.used),
            "features_left_out": ", ".join(f"{k} (needs {'/'.join(v)})" for k, v in features.missing.items())
            or "none",
            "summary": markdown_table(summary),
        }
    )


class LearnerLabelSettings(Config):
    """Mirrors :class:`coursepilot.labels.LearnerLabelConfig`, whose defaults it takes."""

    threshold_quantile: float = LearnerLabelConfig.threshold_quantile
    cv_folds: int = LearnerLabelConfig.cv_folds
    rf_trees: int = LearnerLabelConfig.rf_trees
    rf_max_train: int = LearnerLabelConfig.rf_max_train
    svm_max_train: int = LearnerLabelConfig.svm_max_train
    seed: int = LearnerLabelConfig.seed
    retune: bool = True  # False (the nightly job): score and fit only the classifier the last run chose
    # with retune False: label only learners whose features changed, with the classifier the last fit kept
    incremental: bool = True


def _kept_classifier(home: ProjectHomeResource, config: LearnerLabelSettings) -> KeptClassifier | None:
    """The classifier the last fit kept, when this run may label with it (the nightly: no retuning)."""
    if config.retune or not config.incremental:
        return None
    return KeptClassifier.load(home.models.path(LEARNER_CLASSIFIER, ""))


def _relabelled_result(kept: KeptClassifier, changes, labels: pd.DataFrame) -> MaterializeResult:
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(labels),
            **changes.metadata(),
            "chosen_model": kept.name,
            "classifier": f"kept from the last fit ({kept.key}); the weekly run fits it again",
            "adaptive_share": round(float(labels["adaptive"].mean()), 4),
        }
    )


def _scores_table(result) -> pd.DataFrame:
    rows = [
        {"model": name, "accuracy": round(s.accuracy, 4), "f1": round(s.f1, 4)}
        for name, s in result.cv.items()
    ]
    if result.against_truth is not None:
        rows.append(
            {
                "model": f"{result.chosen} labels vs ground truth",
                "accuracy": round(result.against_truth.accuracy, 4),
                "f1": round(result.against_truth.f1, 4),
            }
        )
    if result.rule_against_truth is not None:
        rows.append(
            {
                "model": "threshold rule vs ground truth",
                "accuracy": round(result.rule_against_truth.accuracy, 4),
                "f1": round(result.rule_against_truth.f1, 4),
            }
        )
    return pd.DataFrame(rows)


@asset(
    group_name=GROUP,
    kinds={"duckdb", "sklearn", "mlflow"},
    deps=[learner_features],
    description="Adaptive vs non-adaptive learners: RandomForest (out of bag) and SVM (cross-validated); the "
    "better by F1 labels everyone. Nothing to learn from: p_adaptive 0.5, adaptive NULL for all; "
    "metadata 'fallback' says why. The nightly (retune=False) labels only learners whose features changed, "
    "with the classifier the last fit kept.",
)
def learner_labels(
    context: AssetExecutionContext,
    config: LearnerLabelSettings,
    warehouse: WarehouseResource,
    home: ProjectHomeResource,
    tracking: TrackingResource,
) -> MaterializeResult:
    kept = _kept_classifier(home, config)
    with warehouse.get_connection() as con:
        features = load_features(con)
        truth = truth_labels(con)
        settings = {k: v for k, v in config.model_dump().items() if k not in ("retune", "incremental")}
        scope = f"scale {ingest.source_info(con)['rating_scale']} settings {settings}"
        usable = kept and kept.features == features.used
        changes = label_changes(con, kept, scope) if usable else None
        if changes is not None and not changes.everyone:
            fresh, stored = relabelled(con, features, kept, changes, truth)
            replace_tables(
                con,
                {inputs_table(TABLE): changes.fingerprints},
                {TABLE: Merge(fresh, changes.kept_ids())},
            )
            return _relabelled_result(kept, changes, pd.concat([stored, fresh], ignore_index=True))
        chosen = None if config.retune else getattr(home.models.last(LEARNER_LABELS), "chosen", None)
        classifiers = (chosen,) if chosen else LearnerLabelConfig.classifiers
        result = label_learners(features, truth, LearnerLabelConfig(**settings, classifiers=classifiers))
        fitted = None if result.fallback else KeptClassifier.of(result, features)
        fingerprints = label_changes(con, fitted, scope, incremental=False).fingerprints
        replace_tables(con, {TABLE: result.labels, inputs_table(TABLE): fingerprints})
        tags = run_tags(context, con)
    if fitted:
        home.models.save_folder(LEARNER_CLASSIFIER, fitted.save)
    if result.fallback:
        context.log.warning(
            f"no learner classifier trained, every learner gets p_adaptive 0.5: {result.fallback}"
        )
        return MaterializeResult(
            metadata={
                "dagster/row_count": len(result.labels),
                "label_source": result.label_source,
                "fallback": result.fallback,
            }
        )
    if chosen:
        context.log.info(
            f"kept the {chosen} classifier from the last run (retune=False); the other was not trained"
        )
    home.models.save(LEARNER_LABELS, LabelChoice(result.chosen))
    tracker = tracking.tracker()
    params = {**settings, "features": ",".join(result.features), "label_source": result.label_source}
    run_ids = {
        name: log_classifier(
            tracker,
            f"learner_labels_{name}",
            model,
            {**params, "classifier": name, "chosen": name == result.chosen},
            {
                "cv": result.cv[name],
                **({"truth": result.against_truth} if result.against_truth and name == result.chosen else {}),
            },
            tags,
        )
        for name, model in result.models.items()
    }
    confusion = result.against_truth.confusion if result.against_truth else result.cv[result.chosen].confusion
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(result.labels),
            "label_source": result.label_source,
            "chosen_model": result.chosen,
            "threshold": result.threshold if result.threshold is not None else "n/a (ground truth)",
            "adaptive_share": round(float(result.labels["adaptive"].mean()), 4),
            "rf_svm_agreement": round(result.agreement, 4)
            if result.agreement is not None
            else f"n/a (only {result.chosen})",
            "scores": markdown_table(_scores_table(result)),
            "confusion_matrix": confusion_table(confusion, "non-adaptive", "adaptive"),
            "mlflow_runs": MetadataValue.json(run_ids),
        }
    )
