"""Why the fusion recommends a course: the component that contributed most to its score, with evidence.

Evidence per component kind: item-based CF (EASE, item-kNN) names the taken course with the largest
weight toward the recommendation; factor models (ALS, BPR) and content name the taken course nearest
to it in their own space (item factors, MiniLM or TF-IDF vectors); the peer group gives the share of
the learner's group that took it; popularity and the level term need none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.preprocessing import normalize

from .factors import Factorisation
from .fusion import Fusion
from .item_based import ItemBased
from .peer_group import PeerGroup
from .simple import Content


@dataclass(frozen=True)
class Reason:
    component: str  # the fusion component with the largest weighted share of the score
    evidence: int = -1  # a course column the learner took (-1: none)
    share: float = 0.0  # peer group: share of the learner's group that took the course
    group_size: int = 0


def explain(
    fusion: Fusion, row: int, courses: np.ndarray, parts: dict[str, np.ndarray] | None = None
) -> list[Reason]:
    """One :class:`Reason` per course column of ``courses`` for learner ``row`` (``parts``: the fusion's
    ``parts`` of that row when already computed)."""
    parts = fusion.parts(np.array([row])) if parts is None else parts
    names = list(parts)
    contributions = np.vstack([parts[m][0, courses] for m in names])  # (components, courses)
    return [
        _reason(names[int(np.argmax(contributions[:, i]))], fusion, row, int(c))
        for i, c in enumerate(courses)
    ]


def _reason(name: str, fusion: Fusion, row: int, course: int) -> Reason:
    model = fusion.components[name]
    taken = fusion.data.matrix[row].indices
    if isinstance(model, ItemBased):
        return Reason(name, model.evidence(row, course)[0])
    if isinstance(model, PeerGroup):
        return Reason(
            name,
            share=float(model.score(np.array([row]))[0, course]),
            group_size=int(model.sizes[model.labels[row]]),
        )
    if isinstance(model, (Factorisation, Content)) and len(taken):
        space = model.item_factors if isinstance(model, Factorisation) else model.courses
        return Reason(name, int(taken[np.argmax(_cosines(space, taken, course))]))
    return Reason(name)


def _cosines(vectors, taken: np.ndarray, course: int) -> np.ndarray:
    """Cosine of each taken course's vector with the recommended one's (dense or sparse rows)."""
    rows = normalize(vectors[np.r_[taken, course]])
    sims = rows[:-1] @ rows[-1].T
    return np.asarray(sims.toarray() if sparse.issparse(sims) else sims).ravel()
