"""Peers kept night after night (:func:`coursepilot.peers.incremental.peers_to_rank`): who is ranked
again, and the stored table after the merge."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from coursepilot.changes import Changes
from coursepilot.models.base import split_matrix
from coursepilot.peers.incremental import PeerUpdate, moved_clusters, peers_to_rank, updated_clusters
from coursepilot.peers.ranking import PeerConfig, hybrid_peers, stored_peers
from coursepilot.peers.reads import course_ids, last_proficiency, profile_jobs
from coursepilot.profiles import load_profiles
from coursepilot.warehouse import replace_tables

from .test_cluster_track import SETTINGS, _add_week, _ready

CONFIG = PeerConfig(k=3, max_candidates=12, active_candidates=4)


def _rank(con, previous: np.ndarray | None, context: str = "settings", incremental: bool = True):
    """Cluster, then rank and store peers as the nightly does; (the update, the clusters' centroids, the
    stored table)."""
    clusters = updated_clusters(con, SETTINGS, None, incremental=False)
    replace_tables(con, clusters.tables, clusters.merged)
    labels, centroids = clusters.tracked.labels, clusters.tracked.centroids
    profiles = load_profiles(con)
    ids = profiles.ids
    update = peers_to_rank(con, ids, labels, centroids, previous, context, incremental)
    train = split_matrix(con, ("train",), ids, course_ids(con), None)
    peers = hybrid_peers(
        train, profiles, last_proficiency(con, ids), labels, centroids, profile_jobs(con), CONFIG, update.rows
    )
    update.store(con, ids, peers)
    return update, clusters.tracked, _table(con)


def _table(con) -> pd.DataFrame:
    return con.execute("SELECT * FROM peer_recommendations ORDER BY learner_id, rank").df()


def test_moved_clusters_by_hand():
    centroids = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    previous = centroids + np.array(
        [[0.0, 0.0], [0.5, 0.0], [0.0, 2.0]]
    )  # gaps: 10, so a shift above 1 moves
    np.testing.assert_array_equal(moved_clusters(previous, centroids), [2])
    np.testing.assert_array_equal(moved_clusters(previous, centroids, share=0.01), [1, 2])
    np.testing.assert_array_equal(moved_clusters(previous[:2], centroids), [0, 1, 2])  # k changed


def test_unchanged_learners_keep_their_peers_and_the_others_are_ranked_again():
    con = _ready()
    first, tracked, table = _rank(con, None)
    assert first.rows is None and first.reason == "no earlier run" and len(table) == 30 * CONFIG.k
    again, tracked, unchanged = _rank(con, tracked.centroids)
    assert len(again.rows) == 0 and len(again.kept_ids) == 30 and len(again.moved) == 0
    pd.testing.assert_frame_equal(unchanged, table)
    assert again.metadata()["ranked_learners"] == 0

    # u03 trains on a new course, u11 leaves, and cluster 0 has moved (its centroid far from where it was)
    con.execute("DELETE FROM interactions WHERE learner_id = 'u11'")
    con.execute("DELETE FROM split WHERE learner_id = 'u11'")
    con.execute("DELETE FROM learners WHERE learner_id = 'u11'")
    _add_week(con, [("u03", "c11")])
    had_u11 = set(table.loc[table["peer_id"] == "u11", "learner_id"]) - {"u11"}
    labels_now = updated_clusters(con, SETTINGS, None, incremental=False).tracked
    previous = labels_now.centroids.copy()
    previous[0] += 10.0
    update, tracked, after = _rank(con, previous)
    ids = load_profiles(con).ids
    ranked = set(ids[update.rows])
    in_cluster_0 = set(ids[tracked.labels == 0])
    assert list(update.moved) == [0]
    assert {"u03"} | had_u11 | in_cluster_0 <= ranked
    assert ranked <= {"u03"} | had_u11 | in_cluster_0 | set(update.changes.changed)
    assert update.lost_peer == len(had_u11 - set(update.changes.changed))
    # kept learners' rows stand as stored; u11 is gone from both sides; everyone still has k peers
    kept = after[after["learner_id"].isin(update.kept_ids)].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        kept, table[table["learner_id"].isin(update.kept_ids)].reset_index(drop=True)
    )
    assert "u11" not in set(after["learner_id"]) | set(after["peer_id"])
    assert (after.groupby("learner_id").size() == CONFIG.k).all() and after["learner_id"].nunique() == 29
    # the merged table as rows of today's learners
    peers = stored_peers(con, ids)
    as_ids = zip(ids[peers["learner"]], peers["rank"], ids[peers["peer"]])
    assert sorted(as_ids) == sorted(zip(after["learner_id"], after["rank"], after["peer_id"]))
    # or of some learners only
    rows = np.array([0, 5, 7])
    some = stored_peers(con, ids, rows)
    assert set(some["learner"]) == {r for r in rows if ids[r] in set(after["learner_id"])}
    pd.testing.assert_frame_equal(
        some.sort_values(["learner", "rank"]).reset_index(drop=True),
        peers[peers["learner"].isin(rows)].sort_values(["learner", "rank"]).reset_index(drop=True),
    )


def test_everyone_is_ranked_when_the_settings_change_or_updates_are_off():
    con = _ready()
    _, tracked, _ = _rank(con, None)
    assert (
        _rank(con, tracked.centroids, context="other settings")[0].reason == "every learner's inputs changed"
    )
    off = _rank(con, tracked.centroids, context="other settings", incremental=False)[0]
    assert off.reason == "incremental updates are off" and off.rows is None
    assert _rank(con, None, context="other settings")[0].reason == "no centroids kept from the last ranking"


def test_slow_drift_adds_up_against_the_centroids_the_cluster_was_last_ranked_with():
    """A cluster drifting 0.06 of its gap a night moves on the second night: the reference is kept until its
    members are ranked again."""
    fingerprints = pa.table({"learner_id": pa.array([], pa.string()), "fp": pa.array([], pa.uint64())})
    start = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    reference = start
    moved_on = []
    for night in (1, 2, 3):
        today = start + np.array([[0.6 * night, 0.0], [0.0, 0.0], [0.0, 0.0]])  # a gap of 10: 0.06 a night
        moved = moved_clusters(reference, today)
        update = PeerUpdate(
            Changes(fingerprints, np.array([], dtype=object), 0), np.array([1]), np.array([]), moved, 0
        )
        reference = update.reference(reference, today)
        moved_on.append(list(moved))
    # night 2: 1.2 from where cluster 0 was ranked (above 1.0); night 3: 0.6 from night 2's ranking
    assert moved_on == [[], [0], []]
    everyone = PeerUpdate(
        Changes(fingerprints, np.array([], dtype=object), 0, "no earlier run"),
        None,
        np.array([]),
        np.arange(3),
        0,
    )
    np.testing.assert_array_equal(everyone.reference(reference, start), start)
