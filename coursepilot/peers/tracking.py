"""Peer groups that follow each learner over time: one K-means per weekly window, each started from the
previous window's centroids and its labels matched to them, so a cluster keeps its number and a learner who
changes group shows as moved."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import sparse

from ..confidence import confidence_weights
from ..profiles import LearnerProfiles
from ..splits import coded_interactions
from .clusters import (
    ClusterConfig,
    ClusterSpace,
    align_labels,
    dbscan,
    kmeans,
    latest_by_window,
    sampled_silhouette,
)
from .state import weekly_windows


@dataclass
class Windows:
    """Training engagement and learning context by weekly window (the weeks of ``learner_state``)."""

    shape: tuple[int, int]  # (learners, courses)
    weeks: np.ndarray  # the windows, ascending
    week: np.ndarray  # each training interaction's window
    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray  # engagement weight of each training interaction
    context: dict[str, np.ndarray]  # D and T (eqs. 13-16): (learners, windows), NaN before a learner's first

    def matrix_at(self, i: int, rows: np.ndarray | None = None) -> sparse.csr_matrix:
        """The engagement matrix of the interactions up to window ``i``, of the learners at ``rows`` (in that
        order; default: everyone)."""
        keep = self.week <= self.weeks[i]
        if rows is None:
            at, shape = self.rows, self.shape
        else:
            position = np.full(self.shape[0], -1)
            position[rows] = np.arange(len(rows))
            at, shape = position[self.rows], (len(rows), self.shape[1])
            keep &= at >= 0
        return sparse.csr_matrix((self.weights[keep], (at[keep], self.cols[keep])), shape=shape)

    def features_at(self, i: int, space: ClusterSpace, rows: np.ndarray | None = None) -> np.ndarray:
        """The cluster features at window ``i`` of the learners at ``rows`` (default: everyone)."""
        at = slice(None) if rows is None else rows
        return space.transform(
            self.matrix_at(i, rows), self.context["D"][at, i], self.context["T"][at, i], at
        )


def load_windows(con, ids: np.ndarray, courses: np.ndarray) -> Windows:
    """The training interactions of learners ``ids`` on ``courses`` and their state rows, by window."""
    train = coded_interactions(con, ("train",), ids, courses)
    state = con.execute("SELECT learner_id, week, D, T FROM learner_state").df()
    weeks = np.sort(state["week"].unique()) if len(state) else np.array([0])
    weights = confidence_weights(train, None).astype(np.float32)
    return Windows(
        (len(ids), len(courses)),
        weeks,
        weekly_windows(train),
        train["row"].to_numpy(),
        train["col"].to_numpy(),
        weights,
        latest_by_window(state, ids, weeks),
    )


def cluster_space(windows: Windows, profiles: LearnerProfiles, settings: ClusterConfig) -> ClusterSpace:
    """The clustering feature space, fitted on the last window's engagement and the profiles (the caller can
    free the profiles after this: :func:`track_clusters` needs only the space)."""
    return ClusterSpace(settings).fit(windows.matrix_at(len(windows.weeks) - 1), profiles)


@dataclass
class TrackedClusters:
    """K-means labels of every learner at the windows computed, with DBSCAN on the last one."""

    clusters: pd.DataFrame  # learner_id, week, cluster, dbscan_cluster (the last window only)
    k: int  # chosen by silhouette on the last window
    silhouettes: dict[int, float]
    moved: dict[int, int]  # window -> learners whose cluster differs from the window before
    window_centroids: np.ndarray  # (windows, k, dims): the centroids of every window, the last at -1
    labels: np.ndarray  # of the last window
    features: np.ndarray  # of the last window
    noise: np.ndarray  # DBSCAN labels of the last window (-1: noise)

    @property
    def centroids(self) -> np.ndarray:
        """The last window's centroids."""
        return self.window_centroids[-1]


def _follow(
    windows: Windows,
    space: ClusterSpace,
    ids: np.ndarray,
    settings: ClusterConfig,
    start: int,
    centroids: np.ndarray | None,
    labels: np.ndarray | None,
    last: np.ndarray | None = None,
) -> tuple[list[pd.DataFrame], dict[int, int], list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """K-means (k fixed in ``settings``) at every window from ``start``, each started from the window
    before's ``centroids`` (None: three seeded starts) and matched to them; ``labels``: the window before's
    (-1: a learner without one); ``last``: the last window's features if already computed. Returns (frames,
    moved, centroids per window, last labels, last features, DBSCAN labels of the last window)."""
    frames, moved, found_by_window = [], {}, []
    for i in range(start, len(windows.weeks)):
        week = int(windows.weeks[i])
        final = i == len(windows.weeks) - 1
        features = last if final and last is not None else windows.features_at(i, space)
        now, found, _, _ = kmeans(features, settings, init=centroids, score=False)
        now, found = align_labels(centroids, found, now)
        if labels is not None:
            had = labels >= 0
            moved[week] = int((now[had] != labels[had]).sum())
        centroids, labels = found, now
        found_by_window.append(found)
        frames.append(pd.DataFrame({"learner_id": ids, "week": week, "cluster": labels}))
    noise = dbscan(features, settings)
    frames[-1]["dbscan_cluster"] = pd.array(noise, dtype="Int64")
    return frames, moved, found_by_window, labels, features, noise


def _table(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The ``peer_clusters`` rows of ``frames`` (dbscan_cluster NULL outside the last window)."""
    clusters = pd.concat(frames, ignore_index=True)
    if "dbscan_cluster" not in clusters:
        clusters["dbscan_cluster"] = pd.NA
    return clusters.astype({"dbscan_cluster": "Int64"})


def track_clusters(
    windows: Windows, space: ClusterSpace, ids: np.ndarray, settings: ClusterConfig
) -> TrackedClusters:
    """Cluster learners ``ids`` at every window in ``space`` (fitted on the last window, as
    :func:`cluster_space` does); k is ``settings.k``, or chosen by silhouette on the last window."""
    last = windows.features_at(len(windows.weeks) - 1, space)
    _, _, k, silhouettes = kmeans(last, settings)
    frames, moved, found, labels, last, noise = _follow(
        windows, space, ids, replace(settings, k=k), 0, None, None, last
    )
    return TrackedClusters(_table(frames), k, silhouettes, moved, np.stack(found), labels, last, noise)


@dataclass
class KeptTrack:
    """What a clustering keeps for the next run to extend: the space it was fitted in and every window's
    centroids."""

    weeks: np.ndarray
    window_centroids: np.ndarray  # (windows, k, dims)
    ids: np.ndarray  # the learners of the stored table, in profile_block's order
    courses: np.ndarray  # the course columns the interaction axes were fitted on
    interaction_axes: np.ndarray
    profile_axes: np.ndarray
    profile_block: np.ndarray
    # names this track in the fingerprints stored beside it: a track that was not saved with them (a failed
    # save) does not match, and the next run clusters everything again
    key: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def of(
        cls, tracked: TrackedClusters, weeks: np.ndarray, space: ClusterSpace, ids, courses
    ) -> "KeptTrack":
        return cls(weeks, tracked.window_centroids, ids, courses, *space.axes, space.profile_block)

    def arrays(self) -> dict[str, np.ndarray]:
        """For the model store: ids as fixed-width text (stored without pickling)."""
        return {
            **{k: v for k, v in vars(self).items() if k not in ("ids", "courses", "key")},
            "ids": self.ids.astype(str),
            "courses": self.courses.astype(str),
            "key": np.array(self.key),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "KeptTrack":
        text = {"ids": arrays["ids"].astype(object), "courses": arrays["courses"].astype(object)}
        # a track stored before tracks had keys matches no fingerprints: the next run clusters everything
        return cls(**{**arrays, **text, "key": str(arrays["key"]) if "key" in arrays else ""})

    def extends_to(self, weeks: np.ndarray) -> bool:
        """Whether today's ``weeks`` begin with the kept ones: the kept windows before the last stand."""
        return len(weeks) >= len(self.weeks) and np.array_equal(weeks[: len(self.weeks)], self.weeks)

    def space(
        self, config: ClusterConfig, profiles: LearnerProfiles, courses: np.ndarray, changed: np.ndarray
    ) -> tuple[ClusterSpace, int]:
        """The kept space over today's learners (``profiles``, whose profile block is projected again where
        ``changed`` or new) and course columns (a course the axes did not see has no weight); and how many
        learners' profile block it projected."""
        columns = pd.Index(courses).get_indexer(self.courses)
        axes = np.zeros((len(self.interaction_axes), len(courses)), dtype=self.interaction_axes.dtype)
        axes[:, columns[columns >= 0]] = self.interaction_axes[:, columns >= 0]
        space = ClusterSpace.restored(config, [axes, self.profile_axes], np.empty(0))
        at = pd.Index(self.ids).get_indexer(profiles.ids)
        block = np.zeros((len(profiles.ids), self.profile_block.shape[1]), dtype=np.float32)
        block[at >= 0] = self.profile_block[at[at >= 0]]
        redo = np.flatnonzero((at < 0) | pd.Index(profiles.ids).isin(changed))
        block[redo] = space.profile_rows(profiles, redo)
        space.profile_block = block
        return space, len(redo)


def nearest(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The index of each row's nearest centroid (squared Euclidean)."""
    distances = (features**2).sum(1)[:, None] - 2 * features @ centroids.T + (centroids**2).sum(1)[None, :]
    return distances.argmin(axis=1)


def extend_track(
    windows: Windows,
    space: ClusterSpace,
    ids: np.ndarray,
    settings: ClusterConfig,
    kept: KeptTrack,
    previous: np.ndarray | None,
) -> TrackedClusters:
    """The kept track followed to today's windows (``kept.extends_to(windows.weeks)``): K-means again at
    the kept last window and every later one, each started from the centroids of the window before (k as
    kept); learners the kept track lacks get the nearest kept centroid at the earlier windows.
    ``previous``: the kept labels of the window before the kept last (-1: none; None: no such window),
    aligned with ``ids``.
    ``clusters`` holds only the rows to add to the stored table (whose rows of earlier windows stand)."""
    start = len(kept.weeks) - 1
    k = kept.window_centroids.shape[1]
    fixed = replace(settings, k=k)
    new = np.flatnonzero(~pd.Index(ids).isin(kept.ids))
    earlier = [
        pd.DataFrame(
            {
                "learner_id": ids[new],
                "week": int(windows.weeks[i]),
                "cluster": nearest(windows.features_at(i, space, new), kept.window_centroids[i]),
            }
        )
        for i in range(start)
        if len(new)
    ]
    frames, moved, found, labels, last, noise = _follow(
        windows,
        space,
        ids,
        fixed,
        start,
        kept.window_centroids[start - 1] if start else None,
        previous,
    )
    silhouettes = {k: sampled_silhouette(last, labels, fixed)}
    window_centroids = np.concatenate([kept.window_centroids[:start], np.stack(found)])
    return TrackedClusters(
        _table(earlier + frames), k, silhouettes, moved, window_centroids, labels, last, noise
    )
