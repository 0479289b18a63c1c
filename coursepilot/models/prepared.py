"""The recommender stages' shared inputs, derived once per warehouse content: everyone's training data, the
test sets and the validation carve.

``als_model`` and ``hybrid_model`` score and tune on the same matrices. At a million learners deriving them
costs about 40 s (coding 16M rows, ranking them in time for the carve, building each matrix and the times).
The arrays derived from the interactions are kept in the read cache (:mod:`coursepilot.read_cache`), named by
the contents of ``interactions`` and ``split``, the learner and course lists, the rating scale and the carve's
settings. The course content and the labels are read fresh every time.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import sparse

from ..ranking import Relevant
from ..read_cache import cached_arrays, ids_digest
from ..splits import CODED_VERSION, coded_interactions
from .base import (
    TrainData,
    interaction_matrix,
    interaction_times,
    learners_and_courses,
    split_matrix,
    with_content,
)
from .hybrid import Carve, Validation, carved_matrices

PREPARED_VERSION = 1  # raise it when the confidence weights, the times or the carve are computed differently


class Prepared(NamedTuple):
    data: TrainData
    relevant: Relevant  # the test split's courses of each learner with any
    validation: Validation


def prepare(con, rating_scale, share: float = 0.2, seed: int = 0, max_learners: int = 0) -> Prepared:
    """Training data of every learner (a seeded sample of ``max_learners`` when set), its test sets, and the
    validation carve of its training rows (``share``, ``seed``: :func:`~.hybrid.carve_validation`)."""
    learner_ids, course_ids, vectors = learners_and_courses(con, max_learners, seed)
    shape = (len(learner_ids), len(course_ids))

    def derive() -> dict[str, np.ndarray]:
        train = coded_interactions(con, ("train",), learner_ids, course_ids)
        fit, fit_times, held, carve = carved_matrices(train, shape, rating_scale, share, seed)
        return {
            **_packed("train", interaction_matrix(train, shape, rating_scale)),
            **_packed("train_times", interaction_times(train, shape)),
            **_packed("fit", fit),
            **_packed("fit_times", fit_times),
            **_packed("valid", held),
            **_packed("test", split_matrix(con, ("test",), learner_ids, course_ids, rating_scale)),
            "carve_held": carve.held,
            "carve_rule": np.array(carve.rule),
            "carve_rules": np.array(list(carve.learners)),
            "carve_learners": np.array(list(carve.learners.values()), dtype=np.int64),
        }

    key = "|".join(
        map(
            str,
            (
                "prepared",
                PREPARED_VERSION,
                CODED_VERSION,
                rating_scale,
                share,
                seed,
                ids_digest(learner_ids),
                ids_digest(course_ids),
            ),
        )
    )
    arrays = cached_arrays(con, ("interactions", "split"), key, derive)
    data = with_content(
        con,
        learner_ids,
        course_ids,
        vectors,
        _unpacked(arrays, "train", shape),
        _unpacked(arrays, "train_times", shape),
    )
    carve = Carve(
        arrays["carve_held"],
        str(arrays["carve_rule"]),
        dict(zip(arrays["carve_rules"].tolist(), arrays["carve_learners"].tolist())),
    )
    fit_data = data.with_matrix(_unpacked(arrays, "fit", shape), _unpacked(arrays, "fit_times", shape))
    return Prepared(
        data,
        Relevant(_unpacked(arrays, "test", shape)),
        Validation(fit_data, Relevant(_unpacked(arrays, "valid", shape)), carve),
    )


def _packed(name: str, matrix: sparse.csr_matrix | None) -> dict[str, np.ndarray]:
    if matrix is None:
        return {}
    matrix = matrix.tocsr()
    return {f"{name}.data": matrix.data, f"{name}.indices": matrix.indices, f"{name}.indptr": matrix.indptr}


def _unpacked(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, int]) -> sparse.csr_matrix | None:
    if f"{name}.data" not in arrays:
        return None
    return sparse.csr_matrix(
        (arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"]), shape=shape
    )
