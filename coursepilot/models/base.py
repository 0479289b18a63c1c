"""Training data and the one interface every recommender speaks.

A model scores every course for a batch of learner rows; ``recommend`` ranks those scores, never
returning a course the learner already took in training. Evaluation, the hybrid and serving use
only this interface.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse

from ..confidence import confidence_weights
from ..ranking import batch_rows, top_k
from ..sampling import sample_rows
from ..schema import DIFFICULTY_LEVELS
from ..splits import coded_interactions, every_learner, require_carried
from ..warehouse import columns, read_vectors

SCORING_THREADS = 2  # batches of learners scored at once by recommend_all (this machine's cores)


@dataclass
class TrainData:
    """Learners x courses confidence matrix plus the course-side content the models read.

    Confidence of an interaction (documented in docs/models.md): 1 + watch_pct/100 + completed + rating
    scaled to 0-1, each term only where the source has the column.
    """

    learner_ids: np.ndarray  # row index -> learner id
    course_ids: np.ndarray  # column index -> course id
    matrix: sparse.csr_matrix  # (learners, courses) confidence of training interactions
    course_vectors: np.ndarray | None = None  # MiniLM embeddings, rows aligned with course_ids
    course_tfidf: sparse.csr_matrix | None = None
    difficulty: np.ndarray | None = None  # 0 beginner, 1 intermediate, 2 advanced, -1 unknown
    p_adaptive: np.ndarray | None = None  # per learner row, NaN when unknown
    extras: dict = field(default_factory=dict)
    times: sparse.csr_matrix | None = (
        None  # interaction time (seconds since the epoch) in matrix's pattern, when known
    )
    p_intensive: np.ndarray | None = (
        None  # per course, p(cognitively intensive), equation (3); NaN when unknown
    )

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def learner_index(self, ids) -> np.ndarray:
        """Row of each learner id (-1 for an unknown learner)."""
        return pd.Index(self.learner_ids).get_indexer(list(ids))

    def course_index(self, ids) -> np.ndarray:
        return pd.Index(self.course_ids).get_indexer(list(ids))

    def with_matrix(self, matrix: sparse.csr_matrix, times: sparse.csr_matrix | None = None) -> "TrainData":
        """The same learners, courses and content with other interactions (e.g. train minus validation)."""
        return replace(self, matrix=matrix.tocsr(), times=times)

    def subset(self, rows: np.ndarray) -> "TrainData":
        """Only the learner ``rows`` (in that order), with the same courses and content."""
        return replace(
            self,
            learner_ids=self.learner_ids[rows],
            matrix=self.matrix[rows],
            p_adaptive=None if self.p_adaptive is None else self.p_adaptive[rows],
            times=None if self.times is None else self.times[rows],
        )


def interaction_matrix(coded: pd.DataFrame, shape: tuple[int, int], rating_scale) -> sparse.csr_matrix:
    """Confidence matrix of interactions read by :func:`~coursepilot.splits.coded_interactions`."""
    weights = confidence_weights(coded, rating_scale).astype(np.float32)
    return sparse.csr_matrix((weights, (coded["row"].to_numpy(), coded["col"].to_numpy())), shape=shape)


def interaction_times(coded: pd.DataFrame, shape: tuple[int, int]) -> sparse.csr_matrix | None:
    """Seconds since the epoch of each coded interaction, in the confidence matrix's pattern (None without
    ``ts``)."""
    if "ts" not in coded or coded["ts"].isna().all():
        return None
    # in numpy, as pandas' total_seconds divides nanoseconds (pandas' own subtraction and timedelta took 4.8 s
    # of an L nightly)
    stamps = pd.to_datetime(coded["ts"]).to_numpy().astype("datetime64[ns]")
    missing = np.isnat(stamps)
    seconds = stamps.view(np.int64) / 1e9
    if missing.any():
        seconds[missing] = seconds[~missing].min()
    return sparse.csr_matrix((seconds, (coded["row"].to_numpy(), coded["col"].to_numpy())), shape=shape)


def split_matrix(
    con, splits: tuple[str, ...], learner_ids: np.ndarray, course_ids: np.ndarray, rating_scale
) -> sparse.csr_matrix:
    """Learners x courses confidence matrix of the interactions of ``splits``."""
    coded = coded_interactions(con, splits, learner_ids, course_ids)
    return interaction_matrix(coded, (len(learner_ids), len(course_ids)), rating_scale)


def split_frame(con, splits: tuple[str, ...], learner_ids=None) -> pd.DataFrame:
    """Interactions of the given splits (all interaction columns, with the ids), of ``learner_ids`` only when
    given, ordered by learner and course (the split table's own order varies from one write to the next)."""
    require_carried(con)
    marks = ", ".join("?" for _ in splits)
    kept = "" if learner_ids is None else "JOIN _kept_learners k USING (learner_id) "
    if learner_ids is not None:
        con.register("_kept_learners", pa.table({"learner_id": pa.array(list(learner_ids), pa.string())}))
    try:
        return con.execute(
            f"SELECT s.* EXCLUDE (split) FROM split s {kept}WHERE s.split IN ({marks}) "
            "ORDER BY s.learner_id, s.course_id",
            list(splits),
        ).df()
    finally:
        if learner_ids is not None:
            con.unregister("_kept_learners")


def load_train_data(con, rating_scale, max_learners: int = 0, seed: int = 0) -> TrainData:
    """Every learner and course of the warehouse, with the ``train`` split as the matrix.

    ``max_learners`` > 0: only a seeded sample of that many learners (``sampling.sample_rows`` over the
    learners in id order), with all of their interactions; only their rows are read.
    """
    return read_train(con, rating_scale, max_learners, seed)[0]


def read_train(con, rating_scale, max_learners: int = 0, seed: int = 0) -> tuple[TrainData, pd.DataFrame]:
    """:func:`load_train_data` and the coded ``train`` rows it was built from (the validation carve reads
    them again: at a million learners the query costs about 20 s)."""
    learner_ids, course_ids, vectors = learners_and_courses(con, max_learners, seed)
    coded = coded_interactions(con, ("train",), learner_ids, course_ids)
    matrix = interaction_matrix(coded, (len(learner_ids), len(course_ids)), rating_scale)
    return with_content(
        con, learner_ids, course_ids, vectors, matrix, interaction_times(coded, matrix.shape)
    ), coded


def learners_and_courses(
    con, max_learners: int = 0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(learner ids: everyone's, or a seeded sample of ``max_learners`` when set; course ids; their MiniLM
    vectors), the rows and columns of :class:`TrainData`."""
    learner_ids = every_learner(con)
    rows = sample_rows(len(learner_ids), max_learners, seed) if max_learners else None
    learner_ids = learner_ids if rows is None else learner_ids[rows]
    course_ids, vectors = read_vectors(con, "course_embeddings", "course_id", "embedding")
    return learner_ids, course_ids, vectors


def with_content(
    con, learner_ids, course_ids, vectors, matrix: sparse.csr_matrix, times: sparse.csr_matrix | None
) -> TrainData:
    """:class:`TrainData` of the training ``matrix`` and ``times``, with the course content and labels and the
    learner labels the warehouse holds now."""
    tfidf = con.execute("SELECT course_id, term, weight FROM tfidf_course_vectors").df()
    terms = pd.Index(tfidf["term"].unique())
    course_tfidf = sparse.csr_matrix(
        (
            tfidf["weight"].to_numpy(np.float32),
            (pd.Index(course_ids).get_indexer(tfidf["course_id"]), terms.get_indexer(tfidf["term"])),
        ),
        shape=(len(course_ids), len(terms)),
    )
    intensity = "p_intensive" if "p_intensive" in columns(con, "course_labels") else "NULL AS p_intensive"
    levels = (
        con.execute(f"SELECT course_id, difficulty, {intensity} FROM course_labels")
        .df()
        .set_index("course_id")
    )
    levels = levels.reindex(course_ids)
    difficulty = (
        levels["difficulty"].map({v: i for i, v in enumerate(DIFFICULTY_LEVELS)}).fillna(-1).to_numpy(int)
    )
    p_adaptive = np.full(len(learner_ids), np.nan)
    if "learner_labels" in {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }:
        labels = con.execute("SELECT learner_id, p_adaptive FROM learner_labels").df()
        rows = pd.Index(learner_ids).get_indexer(labels["learner_id"])
        p_adaptive[rows[rows >= 0]] = labels["p_adaptive"].to_numpy()[rows >= 0]
    extras = {"has_ratings": "rating" in columns(con, "interactions")}
    return TrainData(
        learner_ids,
        course_ids,
        matrix,
        vectors,
        course_tfidf,
        difficulty,
        p_adaptive,
        extras,
        times,
        levels["p_intensive"].to_numpy(float),
    )


class Recommender:
    """Fit on :class:`TrainData`, score course columns for learner rows."""

    name = "base"
    state_keys: tuple[
        str, ...
    ] = ()  # the fitted arrays that, with the training data, restore the model (serving)
    score_params: tuple[
        str, ...
    ] = ()  # parameters read only when scoring: a fitted model takes new values as is

    def rescored(self, **params) -> "Recommender":
        """A copy of this fitted model with other values of its ``score_params`` (no refit)."""
        if not set(params) <= set(self.score_params):
            raise ValueError(f"{sorted(set(params) - set(self.score_params))} need a refit of {self.name}")
        model = copy.copy(self)
        for key, value in params.items():
            setattr(model, key, value)
        model.params = {**getattr(self, "params", {}), **params}
        return model

    def fit(self, data: TrainData) -> "Recommender":
        self.data = data
        return self

    def state(self) -> dict:
        """The fitted arrays named by ``state_keys`` (numpy or scipy sparse)."""
        return {key: getattr(self, key) for key in self.state_keys}

    def restore(self, data: TrainData, state: dict) -> "Recommender":
        """The fitted model again from ``state()`` and the same training data, without refitting."""
        self.data = data
        for key in self.state_keys:
            setattr(self, key, state[key])
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n_courses) scores; higher is better."""
        raise NotImplementedError

    def scored(self, rows: np.ndarray, memo: dict) -> np.ndarray:
        """``score(rows)``, computed once per ``memo`` (one dict per batch of rows shared by several models:
        a model built on others, like the fusion, takes its parts' scores from it)."""
        if id(self) not in memo:
            memo[id(self)] = self.score_with(rows, memo)
        return memo[id(self)]

    def score_with(self, rows: np.ndarray, memo: dict) -> np.ndarray:
        """``score(rows)``; models built on others override it to score their parts through ``memo``."""
        return self.score(rows)

    def recommend(self, rows: np.ndarray, k: int = 10, batch: int | None = None) -> np.ndarray:
        """Top-``k`` course columns per learner row, excluding the courses they took in training."""
        return recommend_all({"": self}, rows, k, batch)[""]


def scoring_batch(models: dict[str, Recommender], batch: int | None = None) -> int:
    """``batch``, or by default :func:`~coursepilot.ranking.batch_rows` of the widest of ``models``."""
    return batch or batch_rows(max((model.data.shape[1] for model in models.values()), default=1))


def recommend_all(
    models: dict[str, Recommender], rows: np.ndarray, k: int = 10, batch: int | None = None
) -> dict[str, np.ndarray]:
    """Each model's top-``k`` course columns per learner row, excluding the courses the learner took in the
    model's training data; per batch of rows every model (and every part of a fusion) is scored once.

    ``SCORING_THREADS`` batches (of ``batch`` rows, by default :func:`~coursepilot.ranking.batch_rows`) are
    scored at a time: the scoring is numpy, scipy and torch work that releases the GIL, and the models only
    read their fitted state.
    """
    rows = np.asarray(rows)
    batch = scoring_batch(models, batch)
    out = {
        name: np.empty((len(rows), min(k, model.data.shape[1])), dtype=np.int64)
        for name, model in models.items()
    }

    def rank(start: int) -> None:
        part, memo = rows[start : start + batch], {}
        for name, model in models.items():
            scored = model.scored(part, memo)
            # a copy (the memo keeps its own), float32 unless the model scores finer
            scores = np.array(scored, dtype=np.result_type(scored, np.float32))
            scores[model.data.matrix[part].nonzero()] = -np.inf
            out[name][start : start + len(part)] = top_k(scores, out[name].shape[1])

    starts = range(0, len(rows), batch)
    if len(starts) < 2:  # one batch (a serving request): no thread to start
        for start in starts:
            rank(start)
        return out
    with ThreadPoolExecutor(SCORING_THREADS) as pool:
        list(pool.map(rank, starts))  # list: raises a batch's error here
    return out
