"""The peer stage's tables updated for what changed since they were stored (:mod:`coursepilot.changes`).

- Learning state: each learner's window aggregates read only their own rows, so the stored rows of
  unchanged learners stand. What depends on everyone (engagement scaled over all windows) is derived again
  for all only when the range of engagement moved. The result equals a full recompute.
- Peer clusters: the kept track (the space fitted at the last full clustering and every window's
  centroids) is followed to today's windows. The windows before the kept last one stand; K-means runs again
  at the kept last window and every later one, from the centroids of the window before, so a learner keeps
  their cluster unless it moved. Profile blocks are projected again only for learners whose profile inputs
  changed. Not equal to a full recompute, which refits the space and every window: the weekly run does that.
- Peer recommendations: a learner keeps their stored peers unless their own inputs changed (profile inputs,
  which hold their training rows; last proficiency; cluster), the cluster they belong to moved (its centroid
  shifted by more than ``MOVED_SHARE`` of the distance to the nearest other centroid since the cluster was
  last ranked as a whole), or one of their peers is gone. A neighbouring cluster's move (its members are
  candidates too) waits for the weekly run. Others' changes reach an unchanged learner's peers at the weekly
  full run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..changes import Changes, inputs_table, kept_rows, learner_changes
from ..profiles import load_profiles
from ..read_cache import cached_arrays
from ..warehouse import Merge, columns, learner_id_table, qident, replace_tables
from .clusters import ClusterConfig
from .reads import LAST_PROFICIENCY_SQL, TRAIN_ROWS_TABLES, course_ids, train_rows_sql, train_with_courses
from .state import StateWeights, derive_state, window_aggregates
from .tracking import KeptTrack, TrackedClusters, cluster_space, extend_track, load_windows, track_clusters

STATE_TABLE = "learner_state"
# bump when window_aggregates computes differently: every stored learner is then recomputed
STATE_VERSION = 1
DERIVED = ("E", "T", "P", "target_difficulty")


def _origin(con, query: str) -> pd.Timestamp | None:
    """Midnight of the first training ``ts`` of :func:`~.reads.train_rows_sql` ``query`` (None without
    timestamps): where the weekly windows start. Through the read cache: two stages ask, and the scan of the
    joined training rows costs 4 s at a million learners."""
    if "ts" not in columns(con, "interactions"):
        return None

    def first() -> dict[str, np.ndarray]:
        found = con.execute(f"SELECT min(ts) FROM ({query}) q").fetchone()[0]
        return {"first": np.array([str(pd.Timestamp(found))])}  # text keeps a time zone; None: "NaT"

    found = pd.Timestamp(str(cached_arrays(con, TRAIN_ROWS_TABLES, f"origin {query}", first)["first"][0]))
    return None if pd.isna(found) else found.normalize()


@dataclass
class StateUpdate:
    """The learning state after :func:`updated_state`: every learner's rows, or only the recomputed learners'
    rows to merge into the stored table (``merged``)."""

    rows: pd.DataFrame
    changes: Changes
    merged: bool

    def write(self, con) -> None:
        """Store the state and the fingerprints of its inputs in one transaction."""
        tables = {inputs_table(STATE_TABLE): self.changes.fingerprints}
        if self.merged:
            replace_tables(con, tables, merged={STATE_TABLE: Merge(self.rows, self.changes.kept_ids())})
        else:
            replace_tables(con, {STATE_TABLE: self.rows, **tables})


def updated_state(con, rating_scale, weights: StateWeights, incremental: bool = True) -> StateUpdate:
    """The learning state of every learner with training rows (as :func:`learner_state` computes it), and
    which learners it recomputed: those whose rows changed since ``learner_state`` was stored, or everyone
    when ``incremental`` is off, there is no stored state, or the windows' origin, the rating scale or the
    weights moved.

    Only the recomputed learners' rows are written when the range of ``E_raw`` over everyone (which scales E)
    stays where it was; otherwise every learner's derived columns are computed again from the stored
    aggregates."""
    query = train_rows_sql(con)
    origin = _origin(con, query)
    context = f"state v{STATE_VERSION} origin {origin} scale {rating_scale} weights {asdict(weights)}"
    changes = learner_changes(con, STATE_TABLE, query, context, incremental)
    if changes.everyone:
        everyone = window_aggregates(con.execute(query).df(), rating_scale, origin)
        return StateUpdate(derive_state(everyone, weights), changes, merged=False)
    fresh = (
        window_aggregates(train_with_courses(con, changes.changed), rating_scale, origin)
        if len(changes.changed)
        else None
    )
    stored, kept_range = _e_range(con), _e_range(con, changes.kept_ids())
    ranges = [r for r in (kept_range, _frame_e_range(fresh)) if r is not None]
    now = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else None
    if now == stored:
        rows = derive_state(fresh, weights, now) if fresh is not None else _no_rows(con)
        return StateUpdate(rows, changes, merged=True)
    kept = kept_rows(con, STATE_TABLE, changes)
    kept = kept[[c for c in kept.columns if c not in DERIVED]]
    if fresh is not None:
        kept = pd.concat([kept, fresh[kept.columns]], ignore_index=True)
    aggregates = kept.sort_values(["learner_id", "week"], kind="stable", ignore_index=True)
    return StateUpdate(derive_state(aggregates, weights), changes, merged=False)


def _e_range(con, learner_ids=None) -> tuple[float, float] | None:
    """(min, max) of the stored ``E_raw`` (of ``learner_ids`` only, when given); None without a value."""
    kept = "" if learner_ids is None else "SEMI JOIN __in_range r USING (learner_id) "
    if learner_ids is not None:
        con.register("__in_range", learner_id_table(learner_ids))
    try:
        low, high = con.execute(
            f"SELECT min(E_raw), max(E_raw) FROM {STATE_TABLE} s {kept}"  # NaN was written as NULL
        ).fetchone()
    finally:
        if learner_ids is not None:
            con.unregister("__in_range")
    return None if low is None else (float(low), float(high))


def _frame_e_range(state: pd.DataFrame | None) -> tuple[float, float] | None:
    raw = None if state is None else state["E_raw"].dropna()
    return None if raw is None or raw.empty else (float(raw.min()), float(raw.max()))


def _no_rows(con) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {STATE_TABLE} LIMIT 0").df()


def state_summary(con, theta: float) -> dict[str, object]:
    """Numbers of the stored ``learner_state`` for the asset's metadata."""
    rated = "R" in columns(con, STATE_TABLE)
    rows, windows, learners, unrated = con.execute(
        f"SELECT count(*), count(DISTINCT week), count(DISTINCT learner_id), "
        f"{'avg((R IS NULL)::DOUBLE)' if rated else 'NULL'} FROM {STATE_TABLE}"
    ).fetchone()
    # pandas wrote NaN as NULL; a missing P is not pushed harder
    mean_p, pushed = con.execute(
        f"SELECT avg(P), avg(coalesce(P > ?, false)::DOUBLE) FROM (SELECT P FROM {STATE_TABLE} "
        "QUALIFY row_number() OVER (PARTITION BY learner_id ORDER BY week DESC) = 1)",
        [theta],
    ).fetchone()

    def share(value) -> float:  # NaN on an empty state, as the mean of nothing
        return float("nan") if value is None else round(float(value), 4)

    return {
        **({"share_weeks_without_rating": share(unrated)} if rated else {}),
        "dagster/row_count": int(rows),
        "windows": int(windows),
        "learners": int(learners),
        "mean_P_last_window": share(mean_p),
        "share_pushed_harder": share(pushed),
    }


CLUSTERS_TABLE = "peer_clusters"
# bump when the clusters are computed differently: the next run then clusters every window again
CLUSTERS_VERSION = 1
PROFILE_INPUTS = inputs_table("learner_profiles")


@dataclass
class ClusterUpdate:
    """Peer clusters after :func:`updated_clusters`: what to write and what to keep for the next run."""

    tracked: TrackedClusters
    kept: KeptTrack
    changes: Changes  # learners whose profile inputs changed since the clusters were stored
    tables: dict[str, object]  # for replace_tables
    merged: dict[str, Merge]
    recomputed_windows: int
    projected_profiles: int  # learners whose profile block was projected
    reason: str  # why every window was clustered again; empty when the kept track was extended

    def metadata(self) -> dict[str, object]:
        """Counts for the asset's metadata: what was recomputed, who changed cluster at the last window."""
        last = int(self.kept.weeks[-1])
        return {
            "recomputed_windows": self.recomputed_windows,
            "kept_windows": len(self.kept.weeks) - self.recomputed_windows,
            "profile_blocks_projected": self.projected_profiles,
            "learners_who_changed_cluster": self.tracked.moved.get(last, 0),
            "recomputed_everything": self.reason or "no: the kept track was extended",
        }


def _reason(changes: Changes, kept: KeptTrack | None, settings: ClusterConfig, weeks: np.ndarray) -> str:
    """Why the clusters cannot extend ``kept`` (empty when they can)."""
    if changes.everyone:
        return changes.reason
    if kept is None:
        return "no kept track"
    if settings.k != kept.window_centroids.shape[1]:
        return "k is chosen again" if settings.k is None else "k changed"
    return "" if kept.extends_to(weeks) else "the weekly windows moved"


def _labels_at(con, week: int, ids: np.ndarray) -> np.ndarray:
    """The stored cluster of learners ``ids`` at ``week`` (-1: none)."""
    stored = con.execute(
        f"SELECT learner_id, cluster FROM {qident(CLUSTERS_TABLE)} WHERE week = ?", [week]
    ).df()
    at = pd.Index(stored["learner_id"]).get_indexer(ids)
    return np.where(at >= 0, stored["cluster"].to_numpy()[np.maximum(at, 0)], -1)


def updated_clusters(
    con, settings: ClusterConfig, kept: KeptTrack | None, incremental: bool = True
) -> ClusterUpdate:
    """Peer clusters of every learner with a profile: ``kept`` extended to today's windows where it can be
    (``incremental``, k fixed and as kept, the same settings, the kept weeks still the first ones, and a
    stored table), else clustered from scratch (:func:`track_clusters`)."""
    profiles = load_profiles(con)
    ids, courses = profiles.ids, course_ids(con)
    windows = load_windows(con, ids, courses)
    # week numbers count from the origin: when it moves, no kept window means the same week. k is left out:
    # the full run chooses it, the nightly keeps it (checked against the kept track)
    fixed = {name: value for name, value in asdict(settings).items() if name != "k"}
    context = f"clusters v{CLUSTERS_VERSION} origin {_origin(con, train_rows_sql(con))} {fixed} track "
    inputs = f"SELECT learner_id, fp FROM {PROFILE_INPUTS}"
    changes = learner_changes(con, CLUSTERS_TABLE, inputs, context + (kept.key if kept else ""), incremental)
    reason = _reason(changes, kept, settings, windows.weeks)
    if reason:
        space = cluster_space(windows, profiles, settings)
        del profiles  # the largest input: not held through the windows
        tracked = track_clusters(windows, space, ids, settings)
        tables, merged = {CLUSTERS_TABLE: tracked.clusters}, {}
        recomputed, projected = len(windows.weeks), len(ids)
    else:
        space, projected = kept.space(settings, profiles, courses, changes.changed)
        del profiles
        start = len(kept.weeks) - 1
        previous = _labels_at(con, int(kept.weeks[start - 1]), ids) if start else None
        tracked = extend_track(windows, space, ids, settings, kept, previous)
        tables = {}
        merged = {CLUSTERS_TABLE: Merge(tracked.clusters, ids, f"week >= {int(kept.weeks[start])}")}
        recomputed = len(windows.weeks) - start
    track = KeptTrack.of(tracked, windows.weeks, space, ids, courses)
    # stored under tonight's track, which the next run must extend
    stored = learner_changes(con, CLUSTERS_TABLE, inputs, context + track.key, incremental=False)
    tables[inputs_table(CLUSTERS_TABLE)] = stored.fingerprints
    return ClusterUpdate(
        tracked,
        track,
        changes,
        tables,
        merged,
        recomputed,
        projected,
        reason,
    )


PEERS_TABLE = "peer_recommendations"
PEERS_VERSION = 1
MOVED_SHARE = 0.1
"""A cluster moved when its centroid shifted by more than this share of the distance to its nearest other
centroid."""


def _peer_inputs_sql() -> str:
    """Per profiled learner, what their own peers depend on: profile inputs, last proficiency, cluster."""
    return (
        f"SELECT p.learner_id, i.fp AS profile, s.D, c.cluster FROM learner_profiles p "
        f"LEFT JOIN {PROFILE_INPUTS} i USING (learner_id) "
        f"LEFT JOIN ({LAST_PROFICIENCY_SQL}) s USING (learner_id) "
        f"LEFT JOIN (SELECT learner_id, cluster FROM {CLUSTERS_TABLE} "
        f"WHERE week = (SELECT max(week) FROM {CLUSTERS_TABLE})) c USING (learner_id)"
    )


def moved_clusters(previous: np.ndarray, centroids: np.ndarray, share: float = MOVED_SHARE) -> np.ndarray:
    """The clusters whose centroid moved from ``previous`` by more than ``share`` of the distance to its
    nearest other centroid (every cluster when k changed)."""
    if previous.shape != centroids.shape:
        return np.arange(len(centroids))
    gaps = np.sqrt(((centroids[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(gaps, np.inf)
    shift = np.sqrt(((centroids - previous) ** 2).sum(axis=1))
    return np.flatnonzero(shift > share * gaps.min(axis=1))


@dataclass
class PeerUpdate:
    """Which learners' peers to rank tonight, and why."""

    changes: Changes  # learners whose own inputs changed
    rows: np.ndarray | None  # learner rows to rank (None: everyone)
    kept_ids: np.ndarray  # learners whose stored peers stand
    moved: np.ndarray  # clusters that moved
    lost_peer: int  # learners ranked again only because a peer of theirs is gone
    reason: str = ""  # why everyone is ranked; empty when only ``rows`` are

    def store(self, con, ids: np.ndarray, peers: pd.DataFrame) -> pd.DataFrame:
        """Write tonight's ``peers`` (learner / rank / peer rows of ``ids``, score, reason) as learner_id,
        rank, peer_id, score, reason, with the fingerprints, in one transaction: the whole table when
        everyone was ranked, else merged with the kept learners'. Returns the rows written."""
        ranked = pd.DataFrame(
            {
                "learner_id": ids[peers["learner"]],
                "rank": peers["rank"],
                "peer_id": ids[peers["peer"]],
                "score": peers["score"],
                "reason": peers["reason"],
            }
        )
        fingerprints = {inputs_table(PEERS_TABLE): self.changes.fingerprints}
        if self.rows is None:
            replace_tables(con, {PEERS_TABLE: ranked, **fingerprints})
        else:
            replace_tables(con, fingerprints, {PEERS_TABLE: Merge(ranked, self.kept_ids)})
        return ranked

    def reference(self, previous: np.ndarray | None, centroids: np.ndarray) -> np.ndarray:
        """The centroids to compare the next night's with: tonight's for the clusters ranked again as a whole
        (every cluster when everyone was), the kept ones for the others, so that slow drift adds up."""
        if self.rows is None or previous is None or previous.shape != centroids.shape:
            return centroids
        out = previous.copy()
        out[self.moved] = centroids[self.moved]
        return out

    def metadata(self) -> dict[str, object]:
        """Counts for the asset's metadata."""
        everyone = self.changes.fingerprints.num_rows
        return {
            "ranked_learners": everyone if self.rows is None else len(self.rows),
            "kept_learners": len(self.kept_ids),
            "inputs_changed": len(self.changes.changed),
            "moved_clusters": [int(c) for c in self.moved],
            "ranked_for_a_lost_peer": self.lost_peer,
            "ranked_everyone": self.reason or "no: only learners whose peers may have changed",
        }


def peers_to_rank(
    con,
    ids: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    previous: np.ndarray | None,
    context: str,
    incremental: bool = True,
) -> PeerUpdate:
    """The learners (of ``ids``, clustered ``labels`` around ``centroids``) whose peers are ranked again:
    their inputs changed, their cluster moved since ``previous`` (the centroids the stored peers were ranked
    with), or a stored peer of theirs is gone. Everyone when ``incremental`` is off, without stored peers or
    ``previous``, or when ``context`` (the peer settings) changed."""
    changes = learner_changes(
        con, PEERS_TABLE, _peer_inputs_sql(), f"peers v{PEERS_VERSION} {context}", incremental
    )
    reason = changes.reason or ("" if previous is not None else "no centroids kept from the last ranking")
    if reason:
        return PeerUpdate(changes, None, np.array([], dtype=object), np.arange(len(centroids)), 0, reason)
    moved = moved_clusters(previous, centroids)
    con.register("__now", learner_id_table(ids))
    try:
        lost = con.execute(
            f"SELECT DISTINCT learner_id FROM {qident(PEERS_TABLE)} "
            "WHERE peer_id NOT IN (SELECT learner_id FROM __now)"
        ).df()["learner_id"]
    finally:
        con.unregister("__now")
    index = pd.Index(ids)
    changed, lost, in_moved = index.isin(changes.changed), index.isin(lost), np.isin(labels, moved)
    redo = changed | in_moved | lost
    return PeerUpdate(
        changes, np.flatnonzero(redo), ids[~redo], moved, int((lost & ~changed & ~in_moved).sum())
    )
