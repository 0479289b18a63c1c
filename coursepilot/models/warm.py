"""Where the nightly's fits of the fusion's factor models start: the fits the last run kept.

The last fits on the validation carve's training rows seed tonight's carve fits only when none of tonight's
validation rows trained them: with timestamps a learner's carve only moves later, but a source without
them (a seeded order that reshuffles as rows arrive), ties in time or a switch of carve rule would leak
validation rows into the fit the promotion gate scores. The carve's training rows are kept as hashes of
their (learner id, course id) pairs to check that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..ranking import Relevant
from ..stored import FUSION_FACTORS
from .base import Recommender, TrainData
from .factors import Factorisation
from .store import ModelStore

CARVE_ROWS = "carve_rows"


def pair_keys(learner_ids: np.ndarray, course_ids: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each (learner id, course id) pair, the same in every run."""
    frame = pd.DataFrame(
        {"learner": np.asarray(learner_ids, dtype=str), "course": np.asarray(course_ids, dtype=str)}
    )
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def trained_pairs(data: TrainData) -> np.ndarray:
    """:func:`pair_keys` of the interactions ``data`` trains on."""
    matrix = data.matrix.tocoo()
    return pair_keys(data.learner_ids[matrix.row], data.course_ids[matrix.col])


def validation_pairs(data: TrainData, valid: dict) -> np.ndarray:
    """:func:`pair_keys` of the validation rows ``valid`` ({learner row: course columns} of ``data``)."""
    rows, cols = Relevant.of(valid, data.shape).pairs()
    return pair_keys(data.learner_ids[rows], data.course_ids[cols])


LEFT_OUT_SHARE = 0.01
"""The largest share of tonight's validation rows that may be left out because they trained the last carve fit
(with timestamps, a learner whose training rows cross a rounding step of the carve's share); above it the
carve fits start cold."""


@dataclass
class FusionStarts:
    """The kept fits' warm states, {name: state} on the carve and on all of train, and the carve's pairs."""

    carve: dict[str, dict] = field(default_factory=dict)
    full: dict[str, dict] = field(default_factory=dict)
    carve_pairs: np.ndarray | None = None

    @classmethod
    def load(cls, store: ModelStore) -> "FusionStarts":
        """What :meth:`save` kept (nothing before the first run)."""
        if store.last(FUSION_FACTORS) is None:
            return cls()
        out = cls()
        for key, value in store.arrays(FUSION_FACTORS).items():
            if key == CARVE_ROWS:
                out.carve_pairs = value
                continue
            fit, name, part = key.split("/")
            getattr(out, fit).setdefault(name, {})[part] = value
        return out

    @staticmethod
    def save(
        store: ModelStore, carve: dict[str, Recommender], full: dict[str, Recommender], carve_data: TrainData
    ) -> None:
        """Keep where the next fits of the factor models among ``carve`` (fitted on ``carve_data``) and
        ``full`` start (``Factorisation.next_start``), and ``carve_data``'s pairs."""
        fits = {
            fit: {name: model for name, model in models.items() if isinstance(model, Factorisation)}
            for fit, models in (("carve", carve), ("full", full))
        }
        store.save(
            FUSION_FACTORS,
            {fit: sorted(models) for fit, models in fits.items()},
            {
                CARVE_ROWS: trained_pairs(carve_data),
                **{
                    f"{fit}/{name}/{key}": value
                    for fit, models in fits.items()
                    for name, model in models.items()
                    for key, value in model.next_start().items()
                },
            },
        )

    def for_carve(self, fit_data: TrainData, valid: dict) -> tuple[dict[str, dict], dict, str]:
        """(the carve fits' starts, empty when none may be used; the validation rows to score; what was done
        about rows of ``valid`` that trained the last carve fit, in words). Up to ``LEFT_OUT_SHARE`` of them
        are left out of tonight's validation, so that no fit the gate scores has seen a row it is scored on;
        more, and the carve fits start cold."""
        if not self.carve or self.carve_pairs is None:
            return {}, valid, "no earlier fit on the carve"
        valid = Relevant.of(valid, fit_data.shape)
        leaked = np.isin(validation_pairs(fit_data, valid), self.carve_pairs)
        if not leaked.any():
            return self.carve, valid, ""
        said = f"{int(leaked.sum()):,} of tonight's validation rows trained the last carve fit"
        if leaked.mean() > LEFT_OUT_SHARE:
            return {}, valid, said
        rows, cols = valid.pairs()
        kept = Relevant.from_pairs(rows[~leaked], cols[~leaked], fit_data.shape)
        return self.carve, kept, f"{said}: left out of validation"
