"""Peer clusters extended night after night (:func:`coursepilot.peers.incremental.updated_clusters`): the kept
track followed to today's windows, against a full clustering."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pandas.testing as pdt
from sklearn.preprocessing import normalize

from coursepilot.home import ProjectHome
from coursepilot.models.store import ModelStore
from coursepilot.peers.clusters import ClusterConfig
from coursepilot.peers.incremental import updated_clusters
from coursepilot.peers.reads import course_ids
from coursepilot.peers.tracking import KeptTrack, load_windows, nearest
from coursepilot.profiles import load_profiles
from coursepilot.stored import CLUSTER_TRACK
from coursepilot.warehouse import replace_tables

from .test_incremental import _profile_warehouse, _profiles, _run

SETTINGS = ClusterConfig(k=3, svd_dims=4, profile_dims=3, silhouette_sample=30, dbscan_min_samples=2)


def _ready():
    """A warehouse with learning state, profiles and fingerprints, as the nightly finds it."""
    con = _profile_warehouse()
    _run(con)
    _profiles(con)
    return con


def _clusters(con, kept: KeptTrack | None, settings: ClusterConfig = SETTINGS, incremental: bool = True):
    """Cluster as the asset does; (the update, the stored table)."""
    update = updated_clusters(con, settings, kept, incremental)
    replace_tables(con, update.tables, update.merged)
    return update, con.execute("SELECT * FROM peer_clusters ORDER BY week, learner_id").df()


def _add_week(con, rows: list[tuple[str, str]]) -> None:
    """Training rows a week after the last interaction; state and profiles updated as the nightly does."""
    week_later = con.execute("SELECT max(ts) FROM interactions").fetchone()[0] + pd.Timedelta(days=7)
    for learner, course in rows:
        con.execute(
            "INSERT INTO learners SELECT ?, 'nurse', NULL WHERE ? NOT IN (SELECT learner_id FROM learners)",
            [learner, learner],
        )
        con.execute("INSERT INTO interactions VALUES (?, ?, 4.0, 80.0, ?)", [learner, course, week_later])
        con.execute("INSERT INTO split VALUES (?, ?, 4.0, 80.0, ?, 'train')", [learner, course, week_later])
    _run(con)
    _profiles(con)


def test_without_changes_the_extended_track_equals_the_stored_clusters():
    con = _ready()
    first, table = _clusters(con, None)
    assert first.reason == "no earlier run" and first.recomputed_windows == len(first.kept.weeks) > 2
    again, extended = _clusters(con, first.kept)
    # the kept last window is clustered again (its week may have new rows), the others stand
    assert again.reason == "" and again.recomputed_windows == 1 and again.projected_profiles == 0
    assert again.metadata()["kept_windows"] == len(first.kept.weeks) - 1
    pdt.assert_frame_equal(extended, table)
    np.testing.assert_array_equal(again.kept.window_centroids, first.kept.window_centroids)
    np.testing.assert_array_equal(again.tracked.labels, first.tracked.labels)


def test_a_new_week_adds_a_window_and_the_earlier_windows_stand():
    con = _ready()
    first, table = _clusters(con, None)
    _add_week(con, [("u03", "c11"), ("u05", "c10"), ("u99", "c01"), ("u99", "c02")])
    update, extended = _clusters(con, first.kept)
    assert update.reason == ""
    weeks = first.kept.weeks
    assert list(update.kept.weeks) == [*weeks, weeks[-1] + 1]
    # one row per learner and window, u99 (new) at every window too
    counts = extended.groupby("learner_id")["week"].nunique()
    assert len(counts) == 31 and (counts == len(weeks) + 1).all() and len(extended) == 31 * (len(weeks) + 1)
    earlier = extended[(extended["week"] < weeks[-1]) & (extended["learner_id"] != "u99")]
    pdt.assert_frame_equal(
        earlier.reset_index(drop=True), table[table["week"] < weeks[-1]].reset_index(drop=True)
    )
    assert extended.loc[extended["week"] < weeks[-1] + 1, "dbscan_cluster"].isna().all()
    assert extended.loc[extended["week"] == weeks[-1] + 1, "dbscan_cluster"].notna().all()
    assert set(extended["cluster"]) <= set(range(SETTINGS.k))
    # profile blocks projected again: the learners whose profile inputs changed, and no one else
    assert {"u03", "u05", "u99"} <= set(update.changes.changed)
    assert update.projected_profiles == len(update.changes.changed) < 31
    assert update.recomputed_windows == 2 and update.tracked.window_centroids.shape == (len(weeks) + 1, 3, 9)


def test_profile_blocks_are_kept_or_projected_again_and_axes_follow_todays_course_columns(tmp_path):
    con = _ready()
    first, _ = _clusters(con, None)
    store = ModelStore(ProjectHome.resolve(tmp_path / "home").ensure())
    store.save(CLUSTER_TRACK, {"k": 3}, first.kept.arrays())
    kept = KeptTrack.from_arrays(store.arrays(CLUSTER_TRACK))
    for name, value in vars(first.kept).items():
        np.testing.assert_array_equal(getattr(kept, name), value)
    # a track stored before tracks had keys loads, and matches no stored fingerprints
    keyless = KeptTrack.from_arrays({k: v for k, v in first.kept.arrays().items() if k != "key"})
    assert keyless.key == "" and _clusters(con, keyless)[0].reason == "every learner's inputs changed"
    profiles = load_profiles(con)
    courses = np.array(["a-new-course", *kept.courses[::-1]], dtype=object)
    space, projected = kept.space(SETTINGS, profiles, courses, np.array(["u04"], dtype=object))
    assert projected == 1
    assert (space.axes[0][:, 0] == 0).all()
    np.testing.assert_array_equal(space.axes[0][:, 1:], kept.interaction_axes[:, ::-1])
    u04 = list(profiles.ids).index("u04")
    others = np.arange(len(profiles.ids)) != u04
    np.testing.assert_array_equal(space.profile_block[others], kept.profile_block[others])
    expected = normalize(profiles.stacked([u04]) @ kept.profile_axes.T)[0]
    np.testing.assert_allclose(space.profile_block[u04], expected, rtol=1e-6)


def test_everything_is_clustered_again_when_the_track_cannot_be_extended():
    con = _ready()
    first, table = _clusters(con, None)
    off, _ = _clusters(con, first.kept, incremental=False)
    assert off.reason == "incremental updates are off" and off.recomputed_windows == len(first.kept.weeks)
    # the track saved before the last run's (its save failed): it does not match the stored fingerprints
    assert _clusters(con, first.kept)[0].reason == "every learner's inputs changed"
    latest = _clusters(con, None)[0].kept
    retuned, _ = _clusters(con, latest, replace(SETTINGS, k=None))
    assert retuned.reason == "k is chosen again"
    wider, _ = _clusters(con, retuned.kept, replace(SETTINGS, svd_dims=5))
    assert wider.reason == "every learner's inputs changed"  # the settings are part of every fingerprint
    latest = _clusters(con, None)[0].kept  # the stored fingerprints back to SETTINGS'
    other = KeptTrack(**{**vars(latest), "window_centroids": latest.window_centroids[:, :2]})
    assert _clusters(con, other)[0].reason == "k changed"
    latest = _clusters(con, None)[0].kept
    # an interaction before the first one moves the weeks' origin: week numbers mean other weeks now
    con.execute("INSERT INTO interactions VALUES ('u00', 'c11', 3.0, 50.0, TIMESTAMP '2024-12-01')")
    con.execute("INSERT INTO split VALUES ('u00', 'c11', 3.0, 50.0, TIMESTAMP '2024-12-01', 'train')")
    _run(con)
    _profiles(con)
    moved, _ = _clusters(con, latest)
    assert moved.reason == "every learner's inputs changed"
    assert moved.recomputed_windows == len(moved.kept.weeks) > len(first.kept.weeks)


def test_nearest_centroid_by_hand():
    centroids = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32)
    points = np.array([[1.0, 1.0], [9.0, -1.0], [-1.0, 12.0], [6.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(nearest(points, centroids), [0, 1, 2, 1])


def test_a_window_matrix_of_some_learners_equals_those_rows_of_everyones():
    con = _ready()
    profiles = load_profiles(con)
    windows = load_windows(con, profiles.ids, course_ids(con))
    rows = np.array([7, 2, 19])
    for i in (0, len(windows.weeks) // 2, len(windows.weeks) - 1):
        np.testing.assert_array_equal(
            windows.matrix_at(i, rows).toarray(), windows.matrix_at(i)[rows].toarray()
        )
    assert windows.matrix_at(len(windows.weeks) - 1, rows).nnz > 0
