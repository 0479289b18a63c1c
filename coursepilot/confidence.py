"""How much one interaction says about a learner: the confidence the models and the peer stage weigh it by."""

from __future__ import annotations

import numpy as np
import pandas as pd


def confidence_weights(interactions: pd.DataFrame, rating_scale: tuple[float, float] | None) -> np.ndarray:
    """1 + watch_pct / 100 + completed + rating scaled to 0-1 (by ``rating_scale``), each term only where the
    source has the column; a missing value adds nothing."""
    weight = np.ones(len(interactions))
    if "watch_pct" in interactions:
        weight += interactions["watch_pct"].fillna(0).to_numpy() / 100.0
    if "completed" in interactions:
        weight += interactions["completed"].fillna(False).to_numpy(dtype=float)
    if "rating" in interactions and rating_scale:
        low, high = rating_scale
        weight += ((interactions["rating"] - low) / (high - low)).fillna(0).to_numpy()
    return weight
