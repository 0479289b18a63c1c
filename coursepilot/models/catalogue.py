"""The one list of recommenders: name, builder, validation grid and role, and training of the whole set.

Roles: ``fusion`` models are components the shipped hybrid may weigh (``level`` is only a component);
``report`` models are rows of the evaluation report. Grids are tried on the validation carve of training
(:mod:`coursepilot.models.tuning`); a model that cannot learn from the data it is given (no course text,
more courses than EASE's dense solve allows) is left out with the reason recorded.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

from ..evaluation.protocol import evaluate
from ..sampling import TUNING_LEARNERS, sample_learners, tuning_population
from .base import Recommender, TrainData
from .factors import WARM_ITERATIONS, Factorisation
from .fusion import Fusion, FusionTuning, tune_fusion
from .hybrid import Hybrid, Tuning, tune
from .item_based import EASE, EASE_COURSES, ItemKNN
from .level import LevelMatch
from .peer_group import PeerGroup
from .simple import Content, Popularity, Trending, UserKNN
from .tuning import Tuned, tune_params


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., Recommender]
    grid: dict[str, tuple] = field(default_factory=dict)  # first value of each: where the ascent starts
    fusion: bool = True
    report: bool = True


MODELS = (
    ModelSpec("popularity", Popularity),
    ModelSpec("trending", Trending, {"half_life": (0.1, 0.02, 0.05, 0.25, 1.0)}),
    ModelSpec(
        "als",
        lambda **p: Factorisation("als", **p),
        {
            "factors": (32, 16, 64, 128),
            "regularization": (1.0, 0.1, 10.0, 0.01),
            "alpha": (2.0, 0.5, 8.0, 32.0),
        },
    ),
    ModelSpec(
        "bpr",
        lambda **p: Factorisation("bpr", **{"iterations": 100, "regularization": 0.01, **p}),
        {"learning_rate": (0.01, 0.003, 0.03, 0.1)},
    ),
    ModelSpec(
        "ease",
        EASE,
        {
            "regularization": (100.0, 3.0, 10.0, 30.0, 300.0, 1000.0, 3000.0),
            "recency": (0.0, 1.0, 2.0, 4.0, 8.0),
        },
    ),
    ModelSpec(
        "item_knn",
        ItemKNN,
        {
            "similarity": ("bm25", "cosine"),
            "neighbours": (100, 20, 50, 200, 400),
            "recency": (0.0, 1.0, 2.0, 4.0, 8.0),
        },
    ),
    # its score needs the learner-neighbour index: item_knn serves instead
    ModelSpec("user_knn", UserKNN, fusion=False),
    ModelSpec("content_minilm", lambda: Content("minilm")),
    ModelSpec("content_tfidf", lambda: Content("tfidf")),
    ModelSpec("peer_group", PeerGroup, {"clusters": (32, 8, 128)}),
    ModelSpec("level", LevelMatch, {"signal": ("both", "difficulty", "intensity")}, report=False),
)
SPECS = {spec.name: spec for spec in MODELS}
# BPR's SGD runs on one thread (so a seed gives one model) and its cost grows with the interactions: 100
# epochs over 20M interactions took over 15 min at size L. Above this, ALS holds the factor role and BPR stays
# a comparison model.
BPR_INTERACTIONS = 5_000_000
# models tuned at once by tune_models: each search is deterministic alone, and their fits and scoring
# release the GIL in their numeric work
TUNING_THREADS = 2


def build(
    name: str, params: dict | None = None, start: dict | None = None, data: TrainData | None = None
) -> Recommender:
    """Model ``name`` with ``params``; a factor model whose fit on ``data`` can start from ``start`` (an
    earlier fit's warm state) does, with ``WARM_ITERATIONS`` of it."""
    model = SPECS[name].build(**(params or {}))
    if start is not None and isinstance(model, Factorisation) and model.start_fits(start, data) is None:
        model.starting_from(start, WARM_ITERATIONS[name])
    return model


def unusable(spec: ModelSpec, data: TrainData) -> str | None:
    """Why ``spec`` cannot learn from ``data`` (None when it can)."""
    if spec.name == "bpr" and data.matrix.nnz > BPR_INTERACTIONS:
        return (
            f"{data.matrix.nnz:,} training interactions: BPR's single-threaded fit stops at "
            f"{BPR_INTERACTIONS:,} (ALS serves the factor role above it)"
        )
    if spec.name == "ease" and data.shape[1] > EASE_COURSES:
        return (
            f"{data.shape[1]:,} courses: EASE's dense solve stops at {EASE_COURSES:,} (item_knn serves "
            "above it)"
        )
    if spec.name == "content_minilm" and data.course_vectors is None:
        return "no course embeddings"
    if spec.name == "content_tfidf" and (data.course_tfidf is None or data.course_tfidf.nnz == 0):
        return "no course text: the TF-IDF vectors are empty"
    if spec.name == "level" and not (data.difficulty >= 0).any() and not _varies(data.p_intensive):
        return "no course has a known difficulty or intensity"
    if spec.name == "trending" and (data.times is None or not data.times.nnz):
        return "no interaction times"
    if spec.name == "trending" and not np.ptp(data.times.data):
        return "every interaction has the same time: trending would only repeat popularity"
    if spec.name == "peer_group" and data.shape[0] < 2:
        return "fewer than two learners: no peer group"
    return None


def _varies(values) -> bool:
    return values is not None and np.ptp(np.nan_to_num(values, nan=0.5)) > 0


@dataclass
class TrainedSet:
    """Every usable model: fitted on the tuning data (train minus the carve) and its validation result."""

    params: dict[str, dict]
    tuning: dict[str, Tuned]
    fitted: dict[str, Recommender]  # on the tuning data
    skipped: dict[str, str]
    fit_data: TrainData
    valid: dict

    def valid_ndcg(self) -> dict[str, float]:
        return {name: tuned.valid_ndcg for name, tuned in self.tuning.items()}


def tune_models(
    fit_data: TrainData,
    valid: dict,
    names=None,
    kept: dict[str, dict] | None = None,
    log=None,
    starts: dict[str, dict] | None = None,
) -> TrainedSet:
    """Tune each model of ``names`` (default all) on ``valid``; ``kept[name]`` fixes a model's parameters (no
    search), and a kept factor model fits from ``starts[name]`` (an earlier warm state) where it can.

    Fits use the tuning population (at most ``TUNING_FIT_LEARNERS`` learners) and score at most
    ``TUNING_LEARNERS`` validation learners, as every tuning does (``coursepilot.sampling``).
    """
    # on everyone: what the full fit will hold
    reasons = {spec.name: unusable(spec, fit_data) for spec in MODELS}
    fit_data, valid = tuning_population(fit_data, valid)
    scored = sample_learners(valid, TUNING_LEARNERS)
    kept = kept or {}
    out = TrainedSet({}, {}, {}, {}, fit_data, valid)
    searches = {}
    # BPR's single-threaded SGD overlaps the other searches
    with ThreadPoolExecutor(TUNING_THREADS) as pool:
        for spec in MODELS:
            if names is not None and spec.name not in names:
                continue
            reason = reasons[spec.name] or unusable(spec, fit_data)
            if reason:
                out.skipped[spec.name] = reason
                continue
            if spec.name in kept:
                grid = {k: (v,) for k, v in kept[spec.name].items()}
                start = (starts or {}).get(spec.name)
                make = partial(_built, spec.name, start=start, data=fit_data)
            else:
                grid, make = spec.grid, spec.build
            searches[spec.name] = pool.submit(tune_params, make, grid, fit_data, scored)
        for name, tuned in in_order(pool, searches).items():
            out.params[name], out.tuning[name], out.fitted[name] = tuned.params, tuned, tuned.model
            if log:
                log(f"{name}: validation nDCG@10 {tuned.valid_ndcg:.4f} with {tuned.params}")
    return out


def _built(name: str, start: dict | None, data: TrainData, **params) -> Recommender:
    return build(name, params, start, data)


def in_order(pool: ThreadPoolExecutor, futures: dict) -> dict:
    """Each future's result in the order of ``futures``, whichever finishes first; on the first error the
    work still queued in ``pool`` is cancelled before the error is raised."""
    try:
        return {name: future.result() for name, future in futures.items()}
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise


def fusion_tuning(trained: TrainedSet, weights: dict[str, float] | None = None) -> FusionTuning:
    """The fusion's weights on validation; with ``weights`` given (the nightly keeps the last ones) only its
    score.

    ``scored_ndcg``: the chosen weights scored by ``evaluate`` on the validation learners, the same way in
    both cases (the search's own score is the best of many trials on its sample): what the promotion gate
    compares.
    """
    components = {m: trained.fitted[m] for m in trained.fitted if SPECS[m].fusion}
    tuning = (
        tune_fusion(components, trained.fit_data, trained.valid)
        if weights is None
        else FusionTuning(weights, 0.0, {}, [])
    )
    score = evaluate(
        Fusion(components, tuning.weights).fit(trained.fit_data, fit_parts=False), trained.valid, ks=(10,)
    )
    tuning.scored_ndcg = score.get("ndcg@10", 0.0)
    if weights is not None:
        tuning.valid_ndcg = tuning.scored_ndcg
    return tuning


def equation6_tuning(trained: TrainedSet, content: str = "minilm") -> Tuning | None:
    """Equation (6)'s alpha and level weight on validation, over the tuned ALS and ``content`` (``minilm`` or
    ``tfidf``) fitted on the tuning data; None when either could not be trained."""
    parts = [trained.fitted.get(name) for name in ("als", f"content_{content}")]
    if None in parts:
        return None
    return tune(Hybrid(*parts), trained.fit_data, trained.valid, fit_parts=False)


def side_by_side(first: Callable, second: Callable) -> tuple:
    """``(first(), second())``, the second run on another thread meanwhile (searches over the same fitted
    models, whose numeric work releases the GIL)."""
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(second)
        return first(), other.result()


def fusion_and_equation6(
    trained: TrainedSet, weights: dict[str, float] | None = None, equation6: bool = True
) -> tuple[FusionTuning, Tuning | None]:
    """``fusion_tuning(trained, weights)`` and, when ``equation6``, ``equation6_tuning(trained)``, side by
    side."""
    return side_by_side(
        lambda: fusion_tuning(trained, weights), lambda: equation6_tuning(trained) if equation6 else None
    )


def fitted_fusion(
    data: TrainData,
    params: dict[str, dict],
    weights: dict[str, float],
    fitted: dict[str, Recommender] | None = None,
    name: str = "hybrid",
    starts: dict[str, dict] | None = None,
) -> Fusion:
    """The fusion on all of ``data``: each weighted component built with its tuned ``params`` and fitted
    (a factor model from ``starts[name]`` where it can), unless ``fitted`` already holds it fitted on
    ``data``."""
    fitted = fitted or {}
    weighted = [m for m, w in weights.items() if w > 0]
    new = fit_models(data, {m: params.get(m) for m in weighted if fitted.get(m) is None}, starts)
    components = {m: new[m] if fitted.get(m) is None else fitted[m] for m in weighted}
    return Fusion(components, weights, name).fit(data, fit_parts=False)


def fit_models(
    data: TrainData, params: dict[str, dict | None], starts: dict[str, dict] | None = None
) -> dict[str, Recommender]:
    """Each model named in ``params`` built with its parameters (and ``starts``, as :func:`build` takes them)
    and fitted on ``data``, ``TUNING_THREADS`` fits at a time (a single-threaded fit, BPR's, overlaps the
    others)."""
    starts = starts or {}
    with ThreadPoolExecutor(TUNING_THREADS) as pool:
        fits = {
            name: pool.submit(lambda n, p: build(n, p, starts.get(n), data).fit(data), name, p)
            for name, p in params.items()
        }
        return in_order(pool, fits)
