"""Multi-factor learner profiles (second paper, equations 14-19).

- E_desc(u): the engagement-weighted mean of the embeddings of the courses u took in training;
- E_job(u), E_soft(u): embeddings of the learner's job and software skills text;
- E_theme(u): the engagement-weighted mean of the theme embeddings of those courses (eq. 17 per course);
- E_u* = [E_desc, E_job, E_soft, E_theme] (eq. 18), compared by cosine (eq. 19).
Every part is L2-normalised (or zero when unknown), so cos(E_u*, E_v*) is the sum of the part
cosines divided by the product of the concatenated norms; nothing 1536-wide needs to be stored.

Engagement weight of an interaction: 1 + watch_pct/100 + completed + rating scaled to 0-1, each
term only where the source has that column.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse

from .confidence import confidence_weights
from .read_cache import VectorRows, cached_rows_with_vectors
from .splits import coded_interactions, train_interactions_sql
from .warehouse import columns, learner_id_table, read_vectors, vector_column

PARTS = ("desc", "job", "soft", "theme")


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def weighted_profiles(
    learner_pos: np.ndarray,
    course_pos: np.ndarray,
    weights: np.ndarray,
    course_vectors: np.ndarray,
    n_learners: int,
) -> np.ndarray:
    """Row-normalised W @ E, with W the sparse learner x course engagement matrix."""
    return normalise_rows(
        np.asarray(
            _engagement(learner_pos, course_pos, weights, n_learners, len(course_vectors)) @ course_vectors,
            dtype=np.float32,
        )
    )


def _engagement(learner_pos, course_pos, weights, n_learners: int, n_courses: int) -> sparse.csr_matrix:
    return sparse.csr_matrix(
        (weights.astype(np.float32), (learner_pos, course_pos)), shape=(n_learners, n_courses)
    )


class DenseVectors:
    """One stored row per learner (the content part, E_desc)."""

    def __init__(self, matrix: np.ndarray):
        self.matrix = np.asarray(matrix, dtype=np.float32)

    def __getitem__(self, rows) -> np.ndarray:
        return self.matrix[rows]

    def __len__(self) -> int:
        return len(self.matrix)

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def known(self) -> int:
        return int((self.matrix != 0).any(axis=1).sum())

    def subset(self, rows: np.ndarray) -> "DenseVectors":
        return DenseVectors(self.matrix[rows])

    def squared_norms(self) -> np.ndarray:
        return np.einsum("ij,ij->i", self.matrix, self.matrix)

    def pair_dots(self, rows, cols) -> np.ndarray:
        """Dot products of the pairs ``(rows[i], cols[i])``."""
        return np.einsum("ij,ij->i", self.matrix[rows], self.matrix[cols])

    def pool_dots(self, pool: np.ndarray):
        """A function of rows giving their (len(rows), len(pool)) float32 dot products with ``pool``."""
        side = np.ascontiguousarray(self.matrix[pool].T)
        return lambda rows: self.matrix[rows] @ side


class CodedVectors:
    """Rows of a small embedding table chosen by code (-1: unknown, a zero row).

    The job and software parts repeat a few hundred texts over every learner; indexing gives dense
    rows only for the learners asked for, so 1M profiles do not hold two 1M x 384 copies.
    """

    def __init__(self, codes: np.ndarray, table: np.ndarray):
        self.codes = codes
        # code -1: last row
        self.table = np.vstack([table, np.zeros((1, table.shape[1]), dtype=np.float32)]).astype(np.float32)
        self.gram = self.table @ self.table.T  # a few hundred texts: small

    def __getitem__(self, rows) -> np.ndarray:
        return self.table[self.codes[rows]]

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.codes), self.table.shape[1]

    def known(self) -> int:
        return int((self.codes >= 0).sum())

    def subset(self, rows: np.ndarray) -> "CodedVectors":
        """The learners ``rows``, sharing this table (no copy of it)."""
        part = copy.copy(self)
        part.codes = self.codes[rows]
        return part

    def squared_norms(self) -> np.ndarray:
        return self.gram.diagonal()[self.codes]

    def pair_dots(self, rows, cols) -> np.ndarray:
        """Dot products of the pairs ``(rows[i], cols[i])``, gathered from the table's Gram matrix."""
        return self.gram[self.codes[rows], self.codes[cols]]

    def pool_dots(self, pool: np.ndarray):
        """As :meth:`DenseVectors.pool_dots`: rows of the Gram matrix's columns for the pool."""
        side = np.ascontiguousarray(self.gram[:, self.codes[pool]])
        return lambda rows: side[self.codes[rows]]


class SpanVectors:
    """Rows ``coefficients @ basis`` kept as their coefficients over a small basis.

    The theme part of a learner mixes the embeddings of a few dozen themes: stored and compared as
    mixing weights, it is as exact as the 384-wide rows and a fraction of their size and products.
    """

    def __init__(self, coefficients: np.ndarray, basis: np.ndarray):
        self.coefficients = np.asarray(coefficients, dtype=np.float32)
        self.basis = np.asarray(basis, dtype=np.float32)
        self.gram = self.basis @ self.basis.T

    @classmethod
    def weighted(
        cls,
        learner_pos: np.ndarray,
        course_pos: np.ndarray,
        weights: np.ndarray,
        courses: CodedVectors,
        n_learners: int,
    ) -> "SpanVectors":
        """Row-normalised W @ E as :func:`weighted_profiles`, E the courses' coded vectors: over the code
        table, or over the embedding axes where the table has more rows than axes."""
        w = _engagement(learner_pos, course_pos, weights, n_learners, len(courses))
        table = courses.table
        if len(table) <= table.shape[1]:
            one_hot = sparse.csr_matrix(
                (np.ones(len(courses), np.float32), (np.arange(len(courses)), courses.codes % len(table))),
                shape=(len(courses), len(table)),
            )
            span = cls(np.asarray((w @ one_hot).todense()), table)
        else:
            span = cls(np.asarray(w @ courses[:], dtype=np.float32), np.eye(table.shape[1], dtype=np.float32))
        norms = np.sqrt(np.maximum(span.squared_norms(), 0))
        span.coefficients = np.divide(
            span.coefficients,
            norms[:, None],
            out=np.zeros_like(span.coefficients),
            where=norms[:, None] > 1e-6,
        )
        return span

    def __getitem__(self, rows) -> np.ndarray:
        return self.coefficients[rows] @ self.basis

    def __len__(self) -> int:
        return len(self.coefficients)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.coefficients), self.basis.shape[1]

    def known(self) -> int:
        return int((self.coefficients != 0).any(axis=1).sum())

    def subset(self, rows: np.ndarray) -> "SpanVectors":
        return SpanVectors(self.coefficients[rows], self.basis)

    def squared_norms(self) -> np.ndarray:
        return np.einsum("ij,ij->i", self.coefficients @ self.gram, self.coefficients)

    def pair_dots(self, rows, cols) -> np.ndarray:
        return np.einsum("ij,ij->i", self.coefficients[rows] @ self.gram, self.coefficients[cols])

    def pool_dots(self, pool: np.ndarray):
        side = np.ascontiguousarray(self.gram @ self.coefficients[pool].T)
        return lambda rows: self.coefficients[rows] @ side


def lookup(values: pd.Series, table: dict[str, np.ndarray], dim: int) -> CodedVectors:
    """The embedding of each text value (zeros where missing)."""
    keys = list(table)
    vectors = np.stack([table[k] for k in keys]) if keys else np.zeros((0, dim), dtype=np.float32)
    return CodedVectors(pd.Index(keys, dtype=object).get_indexer(pd.Series(values, dtype=object)), vectors)


Part = DenseVectors | CodedVectors | SpanVectors


@dataclass
class LearnerProfiles:
    """The four profile parts of a set of learners, aligned with ``ids`` (a plain matrix is taken as dense
    rows)."""

    ids: np.ndarray
    parts: dict[str, Part | np.ndarray]  # part -> rows unit-norm or zero

    def __post_init__(self):
        self.parts = {p: DenseVectors(v) if isinstance(v, np.ndarray) else v for p, v in self.parts.items()}

    def stacked(self, rows=slice(None)) -> np.ndarray:
        """E_u* for the selected rows, equation (18)."""
        return np.hstack([self.parts[p][rows] for p in PARTS])

    def similarity(self, u: int, others: np.ndarray | None = None) -> np.ndarray:
        """cos(E_u*, E_v*) for learner row ``u`` against ``others`` (default: everyone), equation (19)."""
        others = np.arange(len(self.ids)) if others is None else np.asarray(others)
        return self.pair_similarity(np.full(len(others), u), others)

    def pair_similarity(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """cos(E_u*, E_v*) of the pairs ``(rows[i], cols[i])`` (0 where either profile is empty)."""
        dot = sum(part.pair_dots(rows, cols) for part in self.parts.values())
        return np.asarray(dot, dtype=np.float64) * self.inverse_norms[rows] * self.inverse_norms[cols]

    @cached_property
    def inverse_norms(self) -> np.ndarray:
        """1 / |E_u*| of every learner (0 for an empty profile)."""
        norms = np.sqrt(
            np.asarray(sum(part.squared_norms() for part in self.parts.values()), dtype=np.float64)
        )
        return np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)

    def against(self, pool: np.ndarray) -> "PoolCosine":
        """cos(E_u*, E_v*) of any rows against the learners ``pool``, with the pool's side prepared once."""
        return PoolCosine(self, pool)

    def known(self) -> dict[str, int]:
        """Learners with a non-zero vector, per part."""
        return {p: v.known() for p, v in self.parts.items()}

    def subset(self, rows: np.ndarray) -> "LearnerProfiles":
        """The profiles of the learners at positions ``rows``."""
        return LearnerProfiles(self.ids[rows], {p: v.subset(rows) for p, v in self.parts.items()})


class PoolCosine:
    """``(rows, pool)`` cosines of eq. (19) in float32: each part's products with the pool (prepared once),
    summed, both sides' norms applied in place."""

    def __init__(self, profiles: LearnerProfiles, pool: np.ndarray):
        self.profiles = profiles
        self.sides = [part.pool_dots(pool) for part in profiles.parts.values()]
        self.pool_scale = profiles.inverse_norms[pool].astype(np.float32)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        out = self.sides[0](rows)
        for side in self.sides[1:]:
            out += side(rows)
        out *= self.profiles.inverse_norms[rows].astype(np.float32)[:, None]
        out *= self.pool_scale[None, :]
        return out


ATTRIBUTES = {"job": ("learners", "job"), "software": ("learners", "software"), "theme": ("courses", "theme")}


def attribute_values(con) -> dict[str, list[str]]:
    """Distinct job, software and theme texts present in the warehouse (kinds the source lacks are empty)."""
    out = {}
    for kind, (table, column) in ATTRIBUTES.items():
        if column in columns(con, table):
            rows = con.execute(
                f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL AND trim({column}) <> '' "
                f"ORDER BY 1"
            ).fetchall()
            out[kind] = [r[0] for r in rows]
        else:
            out[kind] = []
    return out


def attribute_table(con) -> dict[str, dict[str, np.ndarray]]:
    """kind -> {text: embedding} from the ``attribute_embeddings`` table."""
    # in the stored order (rowid): the theme part's basis follows it, and profile_context hashes it so
    arrow = con.execute(
        "SELECT kind, value, embedding FROM attribute_embeddings ORDER BY rowid"
    ).to_arrow_table()
    if not arrow.num_rows:
        return {kind: {} for kind in ATTRIBUTES}
    vectors = arrow.column(2).combine_chunks()
    matrix = vectors.values.to_numpy(zero_copy_only=False).reshape(-1, vectors.type.list_size)
    out: dict[str, dict[str, np.ndarray]] = {kind: {} for kind in ATTRIBUTES}
    for kind, value, row in zip(arrow.column(0).to_pylist(), arrow.column(1).to_pylist(), matrix):
        out[kind][value] = row
    return out


# bump when build_profiles computes differently: every stored profile is then recomputed
PROFILE_VERSION = 1


def profile_inputs_sql(con) -> str:
    """Per learner, everything :func:`build_profiles` reads of them: a row of their attributes, and a row per
    training interaction with the course's theme and a hash of its embedding."""
    theme = "c.theme" if "theme" in columns(con, "courses") else "NULL"
    return (
        "WITH vectors AS (SELECT course_id, hash(embedding) AS vector FROM course_embeddings), "
        f"train AS ({train_interactions_sql(con)}) "
        "SELECT learner_id, hash(l) AS h FROM learners l UNION ALL "
        f"SELECT t.learner_id, hash(t, {theme}, v.vector) FROM train t SEMI JOIN learners USING (learner_id) "
        "LEFT JOIN courses c USING (course_id) LEFT JOIN vectors v USING (course_id)"
    )


def profile_context(con, rating_scale) -> str:
    """What every profile depends on: the code version, the rating scale and the theme embeddings (the basis
    of the theme part)."""
    themes = con.execute(
        "SELECT hash(list(hash(value, embedding) ORDER BY rowid)) FROM attribute_embeddings "
        "WHERE kind = 'theme'"
    ).fetchone()[0]
    return f"profiles v{PROFILE_VERSION} scale {rating_scale} themes {themes}"


def build_profiles(con, rating_scale, learner_ids=None) -> tuple[pd.DataFrame, LearnerProfiles]:
    """Profiles of every learner (of ``learner_ids`` only, when given) from training interactions, course
    embeddings and attribute embeddings."""
    if learner_ids is None:
        learners = con.execute("SELECT * FROM learners ORDER BY learner_id").df()
    else:
        con.register("__profiled", learner_id_table(learner_ids))
        try:
            learners = con.execute(
                "SELECT l.* FROM learners l SEMI JOIN __profiled USING (learner_id) ORDER BY learner_id"
            ).df()
        finally:
            con.unregister("__profiled")
    course_ids, course_vectors = read_vectors(con, "course_embeddings", "course_id", "embedding")
    attributes = attribute_table(con)
    dim = course_vectors.shape[1]
    theme = "theme" if "theme" in columns(con, "courses") else "NULL AS theme"
    courses = con.execute(f"SELECT course_id, {theme} FROM courses ORDER BY course_id").df()
    themes = lookup(courses.set_index("course_id")["theme"].reindex(course_ids), attributes["theme"], dim)
    train = coded_interactions(con, ("train",), learners["learner_id"].to_numpy(), course_ids)
    rows, cols, weights = (
        train["row"].to_numpy(),
        train["col"].to_numpy(),
        confidence_weights(train, rating_scale),
    )
    n = len(learners)
    parts = {
        "desc": weighted_profiles(rows, cols, weights, course_vectors, n),
        "job": lookup(learners.get("job", pd.Series([None] * n)), attributes["job"], dim),
        "soft": lookup(learners.get("software", pd.Series([None] * n)), attributes["software"], dim),
        "theme": SpanVectors.weighted(rows, cols, weights, themes, n),
    }
    return learners, LearnerProfiles(learners["learner_id"].to_numpy(), parts)


PROFILE_ROWS = VectorRows("learner_profiles", "learner_id", ("desc", "theme"), ("job", "software"))
"""The stored profiles as the peer stages read them (and :func:`profile_tables`' writer keeps them)."""


def profile_tables(learners: pd.DataFrame, profiles: LearnerProfiles) -> dict[str, pa.Table]:
    """``learner_profiles`` (id, job, software, desc rows, theme coefficients) and ``learner_theme_basis``."""
    frame = {"learner_id": learners["learner_id"].tolist()}
    for column in ("job", "software"):
        frame[column] = learners[column].tolist() if column in learners else [None] * len(learners)
    theme = profiles.parts["theme"]
    frame["desc"], frame["theme"] = (
        vector_column(profiles.parts["desc"].matrix),
        vector_column(theme.coefficients),
    )
    return {
        "learner_profiles": pa.table(frame),
        "learner_theme_basis": pa.table(
            {"position": np.arange(len(theme.basis)), "embedding": vector_column(theme.basis)}
        ),
    }


def load_profiles(con) -> LearnerProfiles:
    """The stored ``learner_profiles`` with job and software parts looked up again (the rows through the read
    cache: both peer stages read them)."""
    frame, vectors = cached_rows_with_vectors(con, PROFILE_ROWS)
    attributes = attribute_table(con)
    dim = vectors["desc"].shape[1]
    basis = read_vectors(con, "learner_theme_basis", "position", "embedding")[1]
    return LearnerProfiles(
        frame["learner_id"].to_numpy(dtype=object),
        {
            "desc": vectors["desc"],
            "job": lookup(frame["job"], attributes["job"], dim),
            "soft": lookup(frame["software"], attributes["software"], dim),
            "theme": SpanVectors(vectors["theme"], basis),
        },
    )
