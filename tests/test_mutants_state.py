"""The learning state's fallbacks by hand: no timestamps, no difficulty, no watch data, clicks, a missing
watch share (kills mutants of coursepilot/peers/state.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coursepilot.peers.state import difficulty_path, last_targets, learner_state, weekly_windows

T0 = pd.Timestamp("2025-01-06")


def test_without_timestamps_difficulty_or_watch_engagement_is_clicks_and_the_target_starts_at_one():
    """u took a and b (1 click each), v took a (5 clicks), w took b (3 clicks); rows arrive v, w, u."""
    data = pd.DataFrame(
        {
            "learner_id": ["v", "w", "u", "u"],
            "course_id": ["a", "b", "a", "b"],
            "clicks": [5.0, 3.0, 1.0, 1.0],
            "rating": [4.0, 2.0, 5.0, 1.0],  # no rating scale: left out
        }
    )
    state = learner_state(data, None)
    assert state["learner_id"].tolist() == ["u", "v", "w"]  # in id order, as grouping by the ids gives
    assert state["week"].tolist() == [0, 0, 0] and state["week"].dtype == np.int64
    assert state["n"].tolist() == [2, 1, 1]
    assert "R" not in state and "W" not in state
    # engagement: clicks 2, 5, 3 min-max scaled; T and P are E alone
    np.testing.assert_allclose(state["E"], [0.0, 1.0, 1 / 3])
    np.testing.assert_allclose(state["T"], state["E"])
    np.testing.assert_allclose(state["P"], state["E"])
    # no difficulty: D and the level unknown (float NaN), eq. 21 starts from 1 (delta 0.5, theta 0.6)
    for column in ("D", "level"):
        assert state[column].dtype == np.float64 and state[column].isna().all()
    np.testing.assert_allclose(state["target_difficulty"], [0.7, 1.2, 1 + 0.5 * (1 / 3 - 0.6)])


def test_without_watch_data_every_course_counts_whole_and_engagement_counts_courses():
    data = pd.DataFrame(
        {
            "learner_id": ["u", "u", "v"],
            "course_id": ["a", "b", "a"],
            "ts": [T0, T0 + pd.Timedelta(days=1), T0 + pd.Timedelta(days=2)],
            "difficulty": ["beginner", "advanced", "beginner"],
        }
    )
    state = learner_state(data, (1.0, 5.0)).set_index("learner_id")
    # eq. 3 with W_ui = 1: u (1 + 3) / 2, v one known level 1
    assert state.loc["u", "D"] == pytest.approx(2.0) and state.loc["v", "D"] == pytest.approx(1.0)
    assert state.loc["u", "level"] == pytest.approx(1.0) and state.loc["v", "level"] == pytest.approx(0.0)
    # engagement: one per course taken (2 and 1), min-max scaled
    assert state["E"].tolist() == [1.0, 0.0]


def test_a_missing_watch_share_counts_whole_in_d_and_a_small_engagement_range_still_spans_0_1():
    data = pd.DataFrame(
        {
            "learner_id": ["u", "u", "v"],
            "course_id": ["a", "b", "a"],
            "watch_pct": [20.0, np.nan, 60.0],
            "duration_min": [1.0, 1.0, 1.0],
            "difficulty": ["beginner", "intermediate", "beginner"],
        }
    )
    state = learner_state(data, None).set_index("learner_id")
    # W: u's mean over the known share 0.2, v 0.6; engagement minutes 0.2 and 0.6 scaled to 0 and 1
    assert state["W"].tolist() == pytest.approx([0.2, 0.6])
    assert state["E"].tolist() == pytest.approx([0.0, 1.0])
    # eq. 3: u (1 * 0.2 + 2 * 1) / 2, the unwatched share taken as 1; v 1 * 0.6
    assert state.loc["u", "D"] == pytest.approx(1.1) and state.loc["v", "D"] == pytest.approx(0.6)


def test_weekly_windows_by_hand():
    assert weekly_windows(pd.DataFrame({"learner_id": ["u", "v"]})).tolist() == [0, 0]
    assert weekly_windows(pd.DataFrame({"ts": [pd.NaT, pd.NaT]})).dtype == np.int64
    ts = pd.Series([T0 + pd.Timedelta(hours=10), pd.NaT, T0 + pd.Timedelta(days=7, hours=5)])
    weeks = weekly_windows(pd.DataFrame({"ts": ts}))
    # counted from midnight of the first ts (7 days later is week 1); no ts: the first week
    assert weeks.tolist() == [0, 0, 1] and weeks.dtype == np.int64


def test_an_empty_frame_has_an_empty_state_and_no_targets():
    """No interactions (e.g. a new platform's first night): no windows, no targets, no error."""
    empty = pd.DataFrame(
        {
            "learner_id": pd.Series([], dtype=object),
            "course_id": pd.Series([], dtype=object),
            "timestamp": pd.Series([], dtype="datetime64[ns]"),
            "rating": pd.Series([], dtype=float),
            "difficulty": pd.Series([], dtype=object),
        }
    )
    state = learner_state(empty, (1, 5))
    assert state.empty and {"P", "level", "target_difficulty"} <= set(state)
    assert last_targets(state, 0.25, 0.5).empty
    assert difficulty_path(np.array([], dtype=np.int64), np.array([]), np.array([]), 0.25, 0.5).size == 0
