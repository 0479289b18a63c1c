"""Top-k ranking metrics, per learner, computed the standard way.

For a learner with ranked list R (top k) and relevant set T (their held-out courses):
- precision@k = |R ∩ T| / k; recall@k = |R ∩ T| / |T|; F1@k their harmonic mean;
- hit@k = 1 if R ∩ T is non-empty;
- nDCG@k = DCG / IDCG with binary gains, DCG = sum over hits at rank r (1-based) of 1 / log2(r + 1),
  IDCG the DCG of min(|T|, k) hits at the top;
- AP@k = (1 / min(|T|, k)) * sum over hits at rank r of precision@r (MAP@k is its mean);
- RR = 1 / rank of the first hit in the whole list given (0 without a hit); MRR is its mean.
Lists shorter than k are scored as if padded with misses.
"""

from __future__ import annotations

from itertools import chain

import numpy as np

METRICS = ("precision", "recall", "f1", "hit", "ndcg", "map")


def ranking_metrics(ranked, relevant, k: int) -> dict[str, float]:
    """All ``METRICS`` at ``k`` plus ``mrr`` for one learner (``relevant`` must be non-empty)."""
    relevant = set(relevant)
    if not relevant:
        raise ValueError("a learner with no relevant course cannot be scored")
    ranked = list(ranked)
    hits = np.array([item in relevant for item in ranked[:k]], dtype=bool)
    n_hits = int(hits.sum())
    precision, recall = n_hits / k, n_hits / len(relevant)
    ranks = np.flatnonzero(hits) + 1
    dcg = float(np.sum(1.0 / np.log2(ranks + 1)))
    ideal = float(np.sum(1.0 / np.log2(np.arange(1, min(len(relevant), k) + 1) + 1)))
    ap = float(np.sum(np.arange(1, n_hits + 1) / ranks)) / min(len(relevant), k)
    first = next((i for i, item in enumerate(ranked) if item in relevant), None)
    return {
        "precision": precision,
        "recall": recall,
        "f1": 0.0 if n_hits == 0 else 2 * precision * recall / (precision + recall),
        "hit": float(n_hits > 0),
        "ndcg": dcg / ideal,
        "map": ap,
        "mrr": 0.0 if first is None else 1.0 / (first + 1),
    }


def hit_matrix(top: np.ndarray, relevant: list[set]) -> np.ndarray:
    """(learners, k) booleans: is the item at each rank relevant? Items are column indices (-1 pads a short
    list)."""
    top = np.asarray(top, dtype=np.int64)
    sizes = np.fromiter(map(len, relevant), dtype=np.int64, count=len(relevant))
    items = np.fromiter(chain.from_iterable(relevant), dtype=np.int64, count=int(sizes.sum()))
    # one key per (learner, item + 1): -1 never matches
    width = int(max(top.max(initial=0), items.max(initial=0))) + 2
    keys = np.repeat(np.arange(len(relevant), dtype=np.int64), sizes) * width + items + 1
    return np.isin(np.arange(len(top), dtype=np.int64)[:, None] * width + top + 1, keys).reshape(top.shape)


def metrics_from_hits(
    hits: np.ndarray, n_relevant: np.ndarray, ks, n_candidates: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per-learner ``<metric>@<k>`` arrays from a hit matrix, vectorised (same definitions as
    ``ranking_metrics``).

    With ``n_candidates`` it adds accuracy@k: the share of candidate courses classified right when the
    top k are called relevant and the rest not, (TP + TN) / candidates.
    """
    n_relevant = np.asarray(n_relevant, dtype=float)
    ranks = np.arange(1, hits.shape[1] + 1)
    gains = hits / np.log2(ranks + 1)
    precision_at = np.cumsum(hits, axis=1) / ranks
    out = {}
    for k in ks:
        h = hits[:, :k]
        tp = h.sum(axis=1)
        ideal = np.concatenate([[0.0], np.cumsum(1 / np.log2(np.arange(1, k + 1) + 1))])[
            np.minimum(n_relevant, k).astype(int)
        ]
        p, r = tp / k, tp / n_relevant
        out[f"precision@{k}"], out[f"recall@{k}"] = p, r
        out[f"f1@{k}"] = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
        out[f"hit@{k}"] = (tp > 0).astype(float)
        out[f"ndcg@{k}"] = gains[:, :k].sum(axis=1) / ideal
        out[f"map@{k}"] = (precision_at[:, :k] * h).sum(axis=1) / np.minimum(n_relevant, k)
        if n_candidates is not None:
            tn = n_candidates - k - (n_relevant - tp)
            out[f"accuracy@{k}"] = (tp + tn) / n_candidates
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    out["mrr"] = np.divide(1.0, first, out=np.zeros(len(first)), where=first > 0)
    return out
