"""Nearest courses by embedding: exact search for small catalogues, a usearch HNSW index for large ones.

The choice (and the default ``exact_limit``) comes from ``benchmarks/bench_neighbours.py``.
"""

from __future__ import annotations

import numpy as np

from .imports import IMPORTING

EXACT_LIMIT = 50_000


class CourseIndex:
    """Cosine nearest neighbours over L2-normalised course vectors."""

    def __init__(self, ids, vectors: np.ndarray, exact_limit: int = EXACT_LIMIT, connectivity: int = 16):
        self.ids = np.asarray(ids)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.exact = len(self.ids) <= exact_limit
        self._ann = None
        if not self.exact:
            with IMPORTING:
                from usearch.index import Index

            self._ann = Index(
                ndim=self.vectors.shape[1], metric="cos", dtype="f32", connectivity=connectivity
            )
            self._ann.add(np.arange(len(self.ids)), self.vectors)

    @property
    def kind(self) -> str:
        return "exact" if self.exact else "usearch-hnsw"

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Positions and cosine similarities of the ``k`` nearest courses for each query row."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        k = min(k, len(self.ids))
        if self.exact:
            sims = queries @ self.vectors.T
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
            top = np.take_along_axis(top, order, axis=1)
            return top, np.take_along_axis(sims, top, axis=1)
        found = self._ann.search(queries, k)
        return found.keys.astype(np.int64).reshape(len(queries), -1), 1.0 - found.distances.reshape(
            len(queries), -1
        )

    def similar(self, course_id, k: int = 10) -> list[tuple[object, float]]:
        """The ``k`` courses most like ``course_id`` (itself excluded)."""
        pos = np.flatnonzero(self.ids == course_id)
        if not len(pos):
            raise KeyError(f"unknown course {course_id!r}")
        top, sims = self.search(self.vectors[pos[0]], k + 1)
        return [(self.ids[t], float(s)) for t, s in zip(top[0], sims[0]) if t != pos[0]][:k]
