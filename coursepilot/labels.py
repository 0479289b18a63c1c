"""Learner labels (adaptive / non-adaptive) and course labels (cognitively intensive / accessible).

Learners (first paper, section 3.2): a RandomForest and an SVM are trained on the learner features
and scored out of sample (the forest by its out-of-bag estimate, the SVM by k-fold
cross-validation); the one with the higher out-of-sample F1 (adaptive = positive class) is kept.
Training labels are the ground truth where the source has it (synthetic data), otherwise the
paper's threshold rule: a learner is adaptive when their performance score (the mean of the
normalised performance features: grade, completion rate, watch percentage) exceeds the cohort's
``threshold_quantile`` (the median by default).

When nothing can be learnt (no ground truth and no performance feature for the rule; training labels
of a single class; a class with fewer learners than cross-validation folds) no classifier is trained:
every learner gets the neutral label (:func:`neutral_labels`) and :attr:`LearnerLabels.fallback` says why.

Courses (section 3.3): logistic regression on course embeddings, equation (3), trained on courses
with a difficulty (intensive = intermediate or advanced); courses without one get a difficulty
derived from their text first (:func:`fill_difficulty`).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .features import FeatureTable
from .schema import DIFFICULTY_LEVELS
from .warehouse import table_exists

INTENSIVE_LEVELS = ("intermediate", "advanced")
THREADS = 2  # the forest's jobs and the chunks every learner is labelled in
NO_LEARNERS = "no learner has training interactions (the source has none): nothing to label"
NO_RULE = (
    "no performance feature (grade, completed or watch_pct) in this source: "
    "the threshold rule cannot label learners"
)


@dataclass(frozen=True)
class LearnerLabelConfig:
    threshold_quantile: float = 0.5
    cv_folds: int = 5  # the SVM's; the forest is scored out of bag
    rf_trees: int = 200
    rf_max_train: int = 50_000  # learners sampled (stratified) to train and score the forest
    svm_max_train: int = 5_000  # an RBF SVM scales quadratically: it trains on a smaller sample
    seed: int = 0
    classifiers: tuple[str, ...] = ("rf", "svm")  # one of them: keep an earlier choice, score and fit only it


@dataclass
class Scores:
    accuracy: float
    f1: float
    confusion: list[list[int]]  # rows: true non-adaptive / adaptive; columns: predicted

    @classmethod
    def of(cls, truth, predicted) -> "Scores":
        truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
        return cls(
            float(accuracy_score(truth, predicted)),
            float(f1_score(truth, predicted, zero_division=0)),
            confusion_matrix(truth, predicted, labels=[False, True]).tolist(),
        )


@dataclass
class LearnerLabels:
    labels: pd.DataFrame  # learner_id, adaptive, p_adaptive, training_label
    label_source: str  # "ground truth", "threshold rule (q=...)" or "none"
    threshold: float | None
    # out of sample: "rf" out of bag, "svm" cross-validated, "majority"; on their training samples
    cv: dict[str, Scores]
    chosen: str | None  # None with a fallback
    # share of learners on which RF and SVM agree (out of sample, common sample); None with one
    agreement: float | None
    models: dict[str, object] = field(default_factory=dict)  # fitted rf and svm
    features: list[str] = field(default_factory=list)
    against_truth: Scores | None = None
    rule_against_truth: Scores | None = None  # the paper's threshold rule, where ground truth exists
    fallback: str | None = (
        None  # why nothing was learnt (the labels are then neutral), None when a classifier was
    )


def neutral_labels(learner_ids, training_label=None) -> pd.DataFrame:
    """The learner-labels table when nothing was learnt: ``adaptive`` NULL (unknown), ``p_adaptive`` 0.5 (no
    shift in the level term) and ``training_label`` as given (NULL without one)."""
    ids = pd.Series(learner_ids, dtype="string")  # VARCHAR in DuckDB even when empty
    known = pd.Series(pd.NA if training_label is None else training_label, index=ids.index, dtype="boolean")
    return pd.DataFrame(
        {
            "learner_id": ids,
            "adaptive": pd.Series(pd.NA, index=ids.index, dtype="boolean"),
            "p_adaptive": 0.5,
            "training_label": known,
        }
    )


def truth_labels(con) -> pd.Series | None:
    """The source's own adaptive labels by learner id (``truth_learners``), None where it has none."""
    if not table_exists(con, "truth_learners"):
        return None
    return (
        con.execute("SELECT learner_id, adaptive FROM truth_learners")
        .df()
        .set_index("learner_id")["adaptive"]
    )


def performance_score(features: FeatureTable) -> pd.Series:
    if not features.performance:
        raise ValueError(NO_RULE)
    return features.normalised[features.performance].mean(axis=1, skipna=True)


def threshold_labels(features: FeatureTable, quantile: float) -> tuple[pd.Series, float]:
    """The paper's rule: adaptive when the performance score exceeds the cohort's quantile."""
    score = performance_score(features)
    threshold = float(score.quantile(quantile))
    return score > threshold, threshold


def _stratified_sample(y: np.ndarray, size: int, rng: np.random.Generator, minimum: int) -> np.ndarray:
    """About ``size`` rows in the classes' proportions, at least ``minimum`` of each class (all it has, if
    fewer)."""
    if len(y) <= size:
        return np.arange(len(y))
    picked = [
        rng.choice(rows, min(len(rows), max(minimum, int(round(size * len(rows) / len(y))))), replace=False)
        for rows in (np.flatnonzero(y == c) for c in (False, True))
    ]
    return np.sort(np.concatenate(picked))


def _training_labels(
    features: FeatureTable, truth: pd.Series | None, quantile: float
) -> tuple[np.ndarray | None, str, float | None]:
    """(labels, their source, the rule's threshold): the ground truth where given, else the threshold rule;
    labels None when there is neither."""
    if truth is not None:
        y = truth.reindex(features.normalised["learner_id"].to_numpy()).to_numpy()
        if pd.isna(y).any():
            raise ValueError(f"ground truth is missing for {int(pd.isna(y).sum())} learners")
        return y.astype(bool), "ground truth", None
    if not features.performance:
        return None, "none", None
    rule, threshold = threshold_labels(features, quantile)
    return rule.to_numpy(), f"threshold rule (performance score > quantile {quantile:g})", threshold


def _why_unlearnable(y: np.ndarray | None, threshold: float | None, folds: int) -> str | None:
    """Why no classifier can learn from training labels ``y``, or None when one can."""
    if y is None:
        return f"no ground truth, and {NO_RULE}"
    counts = {"non-adaptive": int((~y).sum()), "adaptive": int(y.sum())}
    rule = "" if threshold is None else f" (performance-score threshold {threshold:g})"
    if min(counts.values()) == 0:
        label = max(counts, key=counts.get)
        return f"every one of the {len(y)} learners has the training label {label}{rule}: nothing to learn"
    if min(counts.values()) < folds:
        return (
            f"too few learners in a class of the training labels to cross-validate "
            f"({', '.join(f'{k} {v}' for k, v in counts.items())}; {folds} folds){rule}"
        )
    return None


def _classifiers(config: LearnerLabelConfig) -> dict[str, object]:
    return {
        "rf": RandomForestClassifier(
            n_estimators=config.rf_trees,
            min_samples_leaf=2,
            oob_score=True,
            n_jobs=THREADS,
            random_state=config.seed,
        ),
        "svm": make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True),
            StandardScaler(),
            CalibratedClassifierCV(SVC(kernel="rbf", C=1.0), method="sigmoid", ensemble=False),
        ),
    }


def p_adaptive(model, X: np.ndarray) -> np.ndarray:
    """P(adaptive) of every row, in row chunks on ``THREADS`` threads (the SVM predicts on one core, releasing
    the GIL)."""
    with ThreadPoolExecutor(THREADS) as pool:
        return np.concatenate(
            list(
                pool.map(
                    lambda part: model.predict_proba(part)[:, 1], np.array_split(X, min(THREADS, len(X)))
                )
            )
        )


def _fit_out_of_sample(
    model, X: np.ndarray, y: np.ndarray, folds: StratifiedKFold
) -> tuple[object, np.ndarray]:
    """The model fitted on every row, and each row's out-of-sample P(adaptive).

    A forest scores itself out of bag: each row is predicted by the trees whose bootstrap sample left
    it out (about a third of them), so one fit replaces ``folds`` fits and a refit. A row drawn by
    every tree (only with a handful of trees) gets the whole forest's probability. Other models:
    ``folds``-fold cross-validated probabilities and a refit on every row.
    """
    if isinstance(model, RandomForestClassifier):
        forest = clone(model).fit(X, y)
        votes = forest.oob_decision_function_
        proba = votes[:, 1].copy()
        never_out = votes.sum(axis=1) == 0
        if never_out.any():
            proba[never_out] = forest.predict_proba(X[never_out])[:, 1]
        return forest, proba
    return clone(model).fit(X, y), cross_val_predict(model, X, y, cv=folds, method="predict_proba")[:, 1]


def label_learners(
    features: FeatureTable, truth: pd.Series | None = None, config: LearnerLabelConfig = LearnerLabelConfig()
) -> LearnerLabels:
    """Train both classifiers, keep the better, and label every learner.

    ``truth`` (indexed by learner_id, bool) is used as training labels when given. A learner in the
    chosen model's training sample gets its out-of-sample probability, so no label is an in-sample fit.
    Training labels nothing can learn from give neutral labels and a ``fallback`` reason instead.
    """
    unknown = set(config.classifiers) - {"rf", "svm"}
    if unknown or not config.classifiers:
        raise ValueError(f"classifiers must be among 'rf' and 'svm', got {config.classifiers!r}")
    ids = features.normalised["learner_id"].to_numpy()
    y, source, threshold = _training_labels(features, truth, config.threshold_quantile)
    reason = _why_unlearnable(y, threshold, config.cv_folds) if len(ids) else NO_LEARNERS
    if reason:
        return LearnerLabels(
            neutral_labels(ids, y),
            source,
            threshold,
            {},
            None,
            None,
            features=list(features.used),
            fallback=reason,
        )

    rng = np.random.default_rng(config.seed)
    X = features.normalised[features.used].to_numpy(dtype=float)
    folds = StratifiedKFold(config.cv_folds, shuffle=True, random_state=config.seed)
    samples = {
        name: _stratified_sample(y, size, rng, config.cv_folds)
        for name, size in (("rf", config.rf_max_train), ("svm", config.svm_max_train))
    }
    models, oof, cv = {n: m for n, m in _classifiers(config).items() if n in config.classifiers}, {}, {}
    for name, model in models.items():
        idx = samples[name]
        models[name], oof[name] = _fit_out_of_sample(model, X[idx], y[idx], folds)
        cv[name] = Scores.of(y[idx], oof[name] > 0.5)
    majority = bool(y.mean() >= 0.5)
    cv["majority"] = Scores.of(y[samples["rf"]], np.full(len(samples["rf"]), majority))
    chosen = max(models, key=lambda n: (cv[n].f1, n == "rf"))
    agreement = None
    if len(models) == 2:
        common = np.intersect1d(samples["rf"], samples["svm"])
        rf_pos, svm_pos = (np.searchsorted(samples[n], common) for n in ("rf", "svm"))
        agreement = float(np.mean((oof["rf"][rf_pos] > 0.5) == (oof["svm"][svm_pos] > 0.5)))

    proba = p_adaptive(models[chosen], X)
    proba[samples[chosen]] = oof[chosen]
    labels = pd.DataFrame(
        {"learner_id": ids, "adaptive": proba > 0.5, "p_adaptive": proba, "training_label": y}
    )
    result = LearnerLabels(labels, source, threshold, cv, chosen, agreement, models, list(features.used))
    if truth is not None:
        result.against_truth = Scores.of(y, labels["adaptive"])
        if features.performance:
            result.rule_against_truth = Scores.of(y, threshold_labels(features, config.threshold_quantile)[0])
    return result


BEGINNER_CUES = re.compile(
    r"\b(introduct\w*|beginners?|basics?|fundamentals?|getting started|no prior|first|essentials?"
    r"|foundations?|overview|101|discover)\b"
)
ADVANCED_CUES = re.compile(
    r"\b(advanced|experts?|in[- ]depth|complex|rigorous|master\w*|deep dive|professionals?|theor\w*"
    r"|optimi[sz]\w*|graduate|research|sophisticated)\b"
)


def difficulty_from_cues(texts: list[str]) -> np.ndarray:
    """Lexical level cues: more advanced than beginner cue words -> advanced, fewer -> beginner, else
    intermediate."""
    lowered = [t.lower() for t in texts]
    score = np.array([len(ADVANCED_CUES.findall(t)) - len(BEGINNER_CUES.findall(t)) for t in lowered])
    return np.where(score > 0, "advanced", np.where(score < 0, "beginner", "intermediate"))


def fill_difficulty(
    vectors: np.ndarray, texts: list[str], difficulty: pd.Series, min_per_level: int = 5, seed: int = 0
) -> tuple[pd.Series, pd.Series, str]:
    """The source's difficulty where it has one; otherwise derived from text.

    With at least ``min_per_level`` labelled courses per level, a multinomial logistic regression on
    the embeddings of the labelled courses predicts the others; with fewer, lexical level cues
    decide (:func:`difficulty_from_cues`). Agreement of both with real labels is measured in
    ``benchmarks/bench_difficulty.py``. Returns (difficulty, source per course, method).
    """
    known = difficulty.notna().to_numpy()
    source = pd.Series(np.where(known, "source", "derived"), index=difficulty.index)
    if known.all():
        return difficulty, source, "source"
    counts = difficulty[known].value_counts()
    filled = difficulty.copy()
    if len(counts) == len(DIFFICULTY_LEVELS) and counts.min() >= min_per_level:
        model = LogisticRegression(C=10.0, max_iter=3000, random_state=seed).fit(
            vectors[known], difficulty[known]
        )
        filled[~known] = model.predict(vectors[~known])
        return filled, source, "logistic regression on the labelled courses' embeddings"
    filled[~known] = difficulty_from_cues([t for t, k in zip(texts, known) if not k])
    return filled, source, "lexical level cues"


@dataclass
class CourseLabels:
    labels: pd.DataFrame  # course_id, difficulty, difficulty_source, intensive, p_intensive
    cv: dict[str, Scores]  # "logreg" and "majority" over the labelled courses (empty when not trained)
    labelled: int
    model: object | None
    fallback: str | None = (
        None  # why no classifier was trained (labels then follow the difficulty), None when one was
    )


def label_courses(
    course_ids,
    vectors: np.ndarray,
    difficulty: pd.Series,
    difficulty_source: pd.Series,
    folds: int = 5,
    seed: int = 0,
) -> CourseLabels:
    """Logistic regression p(intensive | e_d), equation (3), trained on the courses with a difficulty.

    Where the source labels some courses, only those train and score the classifier (derived
    difficulties would make the cross-validation circular); otherwise the derived ones do.
    """
    y = difficulty.isin(INTENSIVE_LEVELS).to_numpy()
    from_source = (difficulty_source == "source").to_numpy() & difficulty.notna().to_numpy()
    labelled = from_source if from_source.any() else difficulty.notna().to_numpy()
    counts = np.bincount(y[labelled].astype(int), minlength=2)
    if counts.min() < folds:
        reason = (
            f"no classifier trained: too few courses per class to cross-validate (accessible {counts[0]}, "
            f"intensive {counts[1]}); labels follow the difficulty"
        )
        labels = pd.DataFrame(
            {
                "course_id": list(course_ids),
                "difficulty": difficulty.to_numpy(),
                "difficulty_source": difficulty_source.to_numpy(),
                "intensive": y,
                "p_intensive": y.astype(float),
            }
        )
        return CourseLabels(labels, {}, int(labelled.sum()), None, reason)
    model = LogisticRegression(C=10.0, max_iter=3000)  # C chosen by cross-validation on synthetic catalogues
    cv_split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    oof = cross_val_predict(model, vectors[labelled], y[labelled], cv=cv_split, method="predict_proba")[:, 1]
    majority = bool(y[labelled].mean() >= 0.5)
    cv = {
        "logreg": Scores.of(y[labelled], oof > 0.5),
        "majority": Scores.of(y[labelled], np.full(int(labelled.sum()), majority)),
    }
    model = clone(model).fit(vectors[labelled], y[labelled])
    proba = model.predict_proba(vectors)[:, 1]
    proba[labelled] = oof
    labels = pd.DataFrame(
        {
            "course_id": list(course_ids),
            "difficulty": difficulty.to_numpy(),
            "difficulty_source": difficulty_source.to_numpy(),
            "intensive": proba > 0.5,
            "p_intensive": proba,
        }
    )
    return CourseLabels(labels, cv, int(labelled.sum()), model)
