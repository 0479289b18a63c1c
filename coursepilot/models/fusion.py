"""The shipped recommender: a validated fusion of every component whose scores help on validation.

score(u, c) = Σ_m w_m · minmax_u(s_m(u, c)): each component's scores are min-max normalised per learner
over the courses (as in equation 6), then weighted. Equation (6) is the special case of two components
(CF with weight alpha, content with 1 - alpha); the fusion also weighs EASE, item-kNN, BPR, TF-IDF
content, popularity, trending, the peer group and the level term.

The weights are found on the validation carve of training (components fitted on training minus the
carve): start from the best single component alone (weight 1), then coordinate ascent over
``WEIGHTS`` for each component in turn, keeping a change only when validation nDCG@10 rises. Every single
component alone is therefore in the search space and the fusion is never worse than its best part on
validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..evaluation.metrics import hit_matrix, metrics_from_hits
from ..ranking import minmax_rows, top_k
from ..sampling import sample_learners
from .base import Recommender, TrainData

WEIGHTS = (0.0, 0.05, 0.1, 0.15, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
FUSION_LEARNERS = (
    5_000  # validation learners the weight search scores (their score matrices are held in memory)
)


class Fusion(Recommender):
    """Weighted sum of per-learner min-max normalised component scores (components with weight 0 are
    dropped)."""

    def __init__(self, components: dict[str, Recommender], weights: dict[str, float], name: str = "hybrid"):
        self.weights = {m: float(w) for m, w in weights.items() if w > 0}
        self.components = {m: components[m] for m in self.weights}
        self.name = name

    def fit(self, data: TrainData, fit_parts: bool = True) -> "Fusion":
        super().fit(data)
        if fit_parts:
            for model in self.components.values():
                model.fit(data)
        return self

    def parts(self, rows: np.ndarray, memo: dict | None = None) -> dict[str, np.ndarray]:
        """Each component's weighted, normalised scores (each component scored once per ``memo``)."""
        memo = {} if memo is None else memo
        return {
            m: minmax_rows(np.asarray(model.scored(rows, memo), dtype=np.float32), self.weights[m])
            for m, model in self.components.items()
        }

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.score_with(rows, {})

    def score_with(self, rows: np.ndarray, memo: dict) -> np.ndarray:
        """The sum of :meth:`parts`, accumulated in place (one buffer for the parts)."""
        total = part = None
        for m, model in self.components.items():
            scores = np.asarray(model.scored(rows, memo), dtype=np.float32)
            part = minmax_rows(scores, self.weights[m], out=part)
            if total is None:
                total, part = part, None
            else:
                total += part
        return total


@dataclass
class FusionTuning:
    weights: dict[str, float]
    valid_ndcg: float
    singles: dict[str, float]  # validation nDCG@10 of each component alone
    steps: list[dict]  # the accepted moves of the ascent, in order
    scored_ndcg: float = 0.0  # the chosen weights scored by ``evaluate`` (see catalogue.fusion_tuning)

    def table(self) -> list[dict]:
        return [
            {"component": m, "weight": self.weights.get(m, 0.0), "alone_valid_ndcg@10": round(v, 4)}
            for m, v in sorted(self.singles.items(), key=lambda kv: -kv[1])
        ]


def tune_fusion(
    components: dict[str, Recommender],
    fit_data: TrainData,
    valid: dict,
    weights=WEIGHTS,
    rounds: int = 3,
    max_learners: int = FUSION_LEARNERS,
    seed: int = 0,
) -> FusionTuning:
    """Weights by nDCG@10 on ``valid`` for ``components`` already fitted on ``fit_data`` (train minus the
    carve)."""
    valid = sample_learners(valid, max_learners, seed)
    rows = np.array(sorted(valid), dtype=np.int64)
    sets = [valid[int(r)] for r in rows]
    n_relevant = np.array([len(s) for s in sets])
    seen = fit_data.matrix[rows].nonzero()
    parts = {
        m: minmax_rows(np.asarray(model.score(rows), dtype=np.float32)) for m, model in components.items()
    }
    k = min(10, fit_data.shape[1])

    def ndcg(blend: np.ndarray) -> float:
        """nDCG@10 of a blend whose taken courses are already -inf."""
        top = top_k(blend, k)
        return float(metrics_from_hits(hit_matrix(top, sets), n_relevant, (10,))["ndcg@10"].mean())

    def unseen(part: np.ndarray) -> np.ndarray:
        out = part.copy()
        out[seen] = -np.inf
        return out

    singles = {m: ndcg(unseen(part)) for m, part in parts.items()}
    first = max(singles, key=lambda m: singles[m])
    current = {m: float(m == first) for m in parts}
    # the blend and a trial buffer, -inf on taken courses (adding a finite part keeps them -inf)
    blend, trial, best = unseen(parts[first]), np.empty_like(parts[first]), singles[first]
    steps = [{"component": first, "weight": 1.0, "valid_ndcg@10": round(best, 4)}]
    for _ in range(rounds):
        changed = False
        for m, part in parts.items():
            for w in weights:
                if w == current[m] or (
                    w == 0 and sum(v > 0 for v in current.values()) == 1 and current[m] > 0
                ):
                    continue
                np.multiply(part, w - current[m], out=trial)
                trial += blend
                score = ndcg(trial)
                if score > best + 1e-9:
                    blend, trial = trial, blend
                    best, current[m], changed = score, w, True
                    steps.append({"component": m, "weight": w, "valid_ndcg@10": round(best, 4)})
        if not changed:
            break
    return FusionTuning({m: w for m, w in current.items() if w > 0}, best, singles, steps)
