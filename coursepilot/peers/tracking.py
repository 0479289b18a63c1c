"""Peer groups that follow each learner over time: one K-means per weekly window, each started from the
previous window's centroids and its labels matched to them, so a cluster keeps its number and a learner who
changes group shows as moved."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import sparse

from ..confidence import confidence_weights
from ..profiles import LearnerProfiles
from ..splits import coded_interactions
from .clusters import ClusterConfig, ClusterSpace, align_labels, dbscan, kmeans, latest_by_window
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

    def matrix_at(self, i: int) -> sparse.csr_matrix:
        """The engagement matrix of the interactions up to window ``i``."""
        keep = self.week <= self.weeks[i]
        return sparse.csr_matrix((self.weights[keep], (self.rows[keep], self.cols[keep])), shape=self.shape)

    def features_at(self, i: int, space: ClusterSpace) -> np.ndarray:
        return space.transform(self.matrix_at(i), self.context["D"][:, i], self.context["T"][:, i])


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
    """K-means labels of every learner at every window, with DBSCAN on the last one."""

    clusters: pd.DataFrame  # learner_id, week, cluster, dbscan_cluster (the last window only)
    k: int  # chosen by silhouette on the last window
    silhouettes: dict[int, float]
    moved: dict[int, int]  # window -> learners whose cluster differs from the window before
    centroids: np.ndarray  # of the last window
    labels: np.ndarray  # of the last window
    features: np.ndarray  # of the last window
    noise: np.ndarray  # DBSCAN labels of the last window (-1: noise)


def track_clusters(
    windows: Windows, space: ClusterSpace, ids: np.ndarray, settings: ClusterConfig
) -> TrackedClusters:
    """Cluster learners ``ids`` at every window in ``space`` (fitted on the last window, as
    :func:`cluster_space` does); k is ``settings.k``, or chosen by silhouette on the last window."""
    last = windows.features_at(len(windows.weeks) - 1, space)
    _, _, k, silhouettes = kmeans(last, settings)
    fixed = replace(settings, k=k)
    frames, moved, centroids, labels = [], {}, None, None
    for i, week in enumerate(windows.weeks):
        features = last if i == len(windows.weeks) - 1 else windows.features_at(i, space)
        now, found, _, _ = kmeans(features, fixed, init=centroids)
        now, found = align_labels(centroids, found, now)
        if labels is not None:
            moved[int(week)] = int((now != labels).sum())
        centroids, labels = found, now
        frames.append(pd.DataFrame({"learner_id": ids, "week": int(week), "cluster": labels}))
    noise = dbscan(last, settings)
    clusters = pd.concat(frames, ignore_index=True)
    clusters["dbscan_cluster"] = pd.NA
    clusters.loc[clusters["week"] == windows.weeks[-1], "dbscan_cluster"] = noise
    clusters = clusters.astype({"dbscan_cluster": "Int64"})
    return TrackedClusters(clusters, k, silhouettes, moved, centroids, labels, last, noise)
