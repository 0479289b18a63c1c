"""What the assets keep in the model store for each other: one typed entry per kind of value.

The asset that writes an entry and the ones that read it share its type here, so a field is named once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models.base import TrainData
from .models.factors import Factorisation
from .models.hybrid import Hybrid
from .models.simple import Content
from .models.store import Entry, ModelStore
from .peers.state import StateWeights
from .peers.tuning import PeerTuning


@dataclass(frozen=True)
class HybridChoice:
    """The shipped fusion as ``hybrid_model`` chose it: what ``recommender`` registers, the nightly keeps."""

    weights: dict[str, float]  # component -> fusion weight
    params: dict[str, dict]  # component -> its settings
    bundle: str  # the serving bundle's folder
    cold_start_popularity: float  # the new-learner blend's popularity weight
    metrics: dict[str, float]  # validation and test scores, MLflow metric names


@dataclass(frozen=True)
class Equation6Choice:
    """Equation (6)'s alpha and level weight, tuned on validation (``hybrid_eq6`` in the report)."""

    alpha: float
    level_weight: float
    valid_ndcg_at_10: float


@dataclass(frozen=True)
class LabelChoice:
    """The learner classifier the last tuning chose (RandomForest or SVM)."""

    chosen: str


@dataclass(frozen=True)
class SteeringChoice:
    """Equation (21)'s delta and theta, tuned on validation, and the validation score without steering."""

    delta: float
    theta: float
    valid_ndcg_at_10: float
    valid_ndcg_at_10_unsteered: float


@dataclass(frozen=True)
class PeerMetrics:
    """The peer rankings' test metrics, their paired t-tests against hybrid peers and the weights used."""

    peers: dict[str, dict[str, float]]
    significance: dict[str, dict]
    weights: dict[str, float]


@dataclass(frozen=True)
class Centroids:
    """The peer clusters' k and the week of the last window (the arrays hold centroids and labels)."""

    k: int
    week: int


ALS, BPR = Entry("als", dict), Entry("bpr", dict)  # settings; the factors as arrays
FACTORS = {entry.name: entry for entry in (ALS, BPR)}
HYBRID = Entry("hybrid", HybridChoice)
HYBRID_EQ6 = Entry("hybrid_eq6", Equation6Choice)
HYBRID_BUNDLE = Entry("hybrid_bundle", dict)  # a folder: registry.save_bundle
NEURAL_HYBRID = Entry("neural_hybrid", dict)  # settings and best epochs; the network's weights as .pt
LEARNER_LABELS = Entry("learner_labels", LabelChoice)
# a folder: the fitted learner classifier the nightly labels changed learners with (coursepilot.kept_labels)
LEARNER_CLASSIFIER = Entry("learner_classifier", dict)
# eqs. (17)-(19): difficulty_steering rebuilds P with them
LEARNER_STATE = Entry("learner_state", StateWeights)
DIFFICULTY_STEERING = Entry("difficulty_steering", SteeringChoice)
PEER_CENTROIDS = Entry("peer_centroids", Centroids)
CLUSTER_MAP = Entry("cluster_map", dict)  # a PNG
# what the nightly's peer clusters extend (coursepilot.peers.incremental): KeptTrack's arrays
CLUSTER_TRACK = Entry("cluster_track", dict)
PEER_WEIGHTS = Entry("peer_weights", PeerTuning)
# the centroids the stored peers were ranked with: the nightly ranks again the members of clusters that moved
PEER_POOLS = Entry("peer_pools", dict)
PEER_METRICS = Entry("peer_metrics", PeerMetrics)
# where the nightly's fits of the fusion's factor components start (coursepilot.models.warm): the last fits on
# the validation carve's training rows ("carve") and on all of train ("full"), and the carve's training rows
FUSION_FACTORS = Entry("fusion_factors", dict)


def fitted_als(store: ModelStore, data: TrainData) -> Factorisation:
    """The ALS model ``als_model`` trained on the full training split, restored from its factors."""
    entry = ALS
    return Factorisation("als", **store.load(entry)).restore(data, store.arrays(entry))


def fitted_equation6(
    store: ModelStore, data: TrainData, content: str = "minilm", name: str = "hybrid_eq6", targets=None
) -> Hybrid:
    """Equation (6) with the alpha and level weight ``hybrid_model`` chose, on the ``als_model`` factors."""
    choice = store.load(HYBRID_EQ6)
    hybrid = Hybrid(
        fitted_als(store, data), Content(content).fit(data), choice.alpha, choice.level_weight, name
    )
    return hybrid.fit(data, fit_parts=False, targets=targets)
