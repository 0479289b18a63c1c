"""Hyperparameters chosen on the validation carve of training, never on test.

Coordinate ascent over a grid: start from each parameter's first value, then, one parameter at a time,
try every value with the others held and keep the best (validation nDCG@10), for ``rounds`` passes or
until nothing changes. With one parameter that is the full grid; with three (ALS: factors x
regularization x alpha, 4 values each) it costs about 10-19 fits instead of 64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..evaluation.protocol import evaluate
from .base import Recommender, TrainData


@dataclass
class Tuned:
    params: dict  # the chosen values
    model: Recommender  # fitted on the tuning data with them
    valid_ndcg: float
    tried: list[tuple[dict, float]]  # every point scored, in order

    def table(self) -> list[dict]:
        return [{**params, "valid_ndcg@10": round(score, 4)} for params, score in self.tried]


def tune_params(
    build: Callable[..., Recommender],
    grid: dict[str, tuple],
    fit_data: TrainData,
    valid: dict,
    rounds: int = 2,
) -> Tuned:
    """Coordinate ascent of ``build(**params)`` over ``grid`` by nDCG@10 on ``valid`` (fitted on
    ``fit_data``).

    Ties keep the earlier point. A grid of single values fits once (the nightly keeps the last choice so). A
    parameter the model reads only when scoring (its ``score_params``, e.g. the item-based models' recency)
    rescores the fitted model instead of fitting it again.
    """
    current = {name: values[0] for name, values in grid.items()}
    scores: dict[tuple, float] = {}
    best: dict = {}  # the fitted model of the best point so far (the one ascent stands on)
    fits: dict[tuple, Recommender] = {}  # by the parameters a fit depends on: the others only rescore it

    def fitted(params: dict) -> Recommender:
        model = build(**params)
        key = tuple(sorted((k, v) for k, v in params.items() if k not in model.score_params))
        if key in fits:
            return fits[key].rescored(**{k: v for k, v in params.items() if k in model.score_params})
        fits[key] = model.fit(fit_data)
        return fits[key]

    def score(params: dict) -> float:
        key = tuple(sorted(params.items()))
        if key not in scores:
            model = fitted(params)
            scores[key] = evaluate(model, valid, ks=(10,)).get("ndcg@10", 0.0)
            if not best or scores[key] > best["score"]:
                best.update(score=scores[key], model=model)
        return scores[key]

    score(current)
    for _ in range(rounds):
        changed = False
        for name, values in grid.items():
            candidate = max(values, key=lambda v: score({**current, name: v}))
            if score({**current, name: candidate}) > score(current):
                current, changed = {**current, name: candidate}, True
        if not changed:
            break
    return Tuned(current, best["model"], score(current), [(dict(k), v) for k, v in scores.items()])
