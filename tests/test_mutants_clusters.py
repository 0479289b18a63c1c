"""Each learner's latest state per window by hand (kills mutants of coursepilot/peers/clusters.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from coursepilot.peers.clusters import latest_by_window


def test_latest_state_skips_learners_outside_the_ids():
    """u has state in weeks 0 and 2, v in week 1; x is not among the learners asked for: its row is left out
    (not written onto the last learner)."""
    state = pd.DataFrame(
        {
            "learner_id": ["u", "u", "v", "x"],
            "week": [0, 2, 1, 2],
            "D": [1.0, 2.0, 3.0, 9.0],
            "T": [0.1, 0.2, 0.3, 0.9],
        }
    )
    latest = latest_by_window(state, np.array(["u", "v"], dtype=object), np.array([0, 1, 2]))
    np.testing.assert_array_equal(latest["D"], [[1.0, 1.0, 2.0], [np.nan, 3.0, 3.0]])
    np.testing.assert_array_equal(latest["T"], [[0.1, 0.1, 0.2], [np.nan, 0.3, 0.3]])
