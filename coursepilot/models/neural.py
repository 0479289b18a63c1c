"""The neural hybrid: a shared attention over CF factors and course text embeddings (first paper, 3.5.2).

Tokens: a learner has two (its ALS factors p_u and its content profile E_u), a course has two (its ALS
factors q_i and its MiniLM embedding e_i). Each token is projected to ``dim`` by a type-specific
linear layer; one shared key and one shared value projection serve both sides (the shared
attention). The learner is the attention-pooled value of its tokens under a learned query; each
course's tokens are then weighted by attention to that learner, so how much the text counts is
decided per learner and course. Score = <learner, attended course> + course bias.

Initialised at its CF input: the CF projections start as the identity (``dim`` is at least the ALS
factor count), the text projections, keys and course biases at zero and the value projection at 2·I.
Zero keys give each token half the attention, so the learner is p_u, the attended course is q_i and
the untrained network (epoch 0) scores p_u · q_i, the ALS score; training moves away from it only as
far as the BPR loss asks. (A residual form, ALS score + a network whose output layer starts at zero,
did worse: on synthetic S its first epoch fell from ALS's validation nDCG@10 0.19 to 0.14.)

Training: BPR loss with ``negatives`` uniformly sampled courses per positive, Adam, early stopping
on validation nDCG@10 (``patience`` epochs; at most 20,000 sampled validation learners), epoch 0 (the
CF input alone) being a candidate; the final model is retrained on all training data for the best
number of epochs. When no epoch beats the CF input on validation the model falls back to it
(``fell_back``, ``fallback_reason``, ``best_epochs`` 0). Trains on one CPU thread: the same seed, the same
model.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from sklearn.preprocessing import normalize
from torch import nn

from ..evaluation.protocol import evaluate
from ..sampling import TUNING_LEARNERS, sample_learners
from .base import Recommender, TrainData
from .factors import Factorisation


class _Network(nn.Module):
    def __init__(self, cf_dim: int, text_dim: int, n_courses: int, dim: int):
        super().__init__()
        self.learner_cf, self.learner_text = nn.Linear(cf_dim, dim), nn.Linear(text_dim, dim)
        self.course_cf, self.course_text = nn.Linear(cf_dim, dim), nn.Linear(text_dim, dim)
        # shared by both sides
        self.key, self.value = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)
        self.query = nn.Parameter(torch.randn(dim) / dim**0.5)
        self.to_query = nn.Linear(dim, dim)
        self.bias = nn.Embedding(n_courses, 1)
        self.scale = dim**-0.5
        self._start_at_cf(cf_dim, dim)

    @torch.no_grad()
    def _start_at_cf(self, cf_dim: int, dim: int) -> None:
        """The weights with which the network scores p_u · q_i (``dim`` >= ``cf_dim``)."""
        eye = torch.eye(dim)
        for layer in (self.learner_cf, self.course_cf):
            layer.weight.copy_(eye[:, :cf_dim])
        for layer in (self.learner_text, self.course_text):
            nn.init.zeros_(layer.weight)
        for zero in (
            self.learner_cf.bias,
            self.course_cf.bias,
            self.learner_text.bias,
            self.course_text.bias,
            self.key.weight,
            self.bias.weight,
        ):
            nn.init.zeros_(zero)
        self.value.weight.copy_(2 * eye)

    def learners(self, p: torch.Tensor, profile: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(learner vector, query for the course side), each (batch, dim)."""
        tokens = torch.stack([self.learner_cf(p), self.learner_text(profile)], dim=1)  # (b, 2, dim)
        weights = torch.softmax((self.key(tokens) @ self.query) * self.scale, dim=1)  # (b, 2)
        user = (weights.unsqueeze(-1) * self.value(tokens)).sum(dim=1)
        return user, self.to_query(user)

    def course_tokens(self, q: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(keys, values) of the course tokens, each (n, 2, dim)."""
        tokens = torch.stack([self.course_cf(q), self.course_text(e)], dim=1)
        return self.key(tokens), self.value(tokens)

    def pair_scores(self, user, query, keys, values, course_idx) -> torch.Tensor:
        """Scores of matching (learner, course) pairs: keys/values are (b, 2, dim)."""
        weights = torch.softmax((keys @ query.unsqueeze(-1)).squeeze(-1) * self.scale, dim=1)  # (b, 2)
        course = (weights.unsqueeze(-1) * values).sum(dim=1)
        return (user * course).sum(dim=1) + self.bias(course_idx).squeeze(-1)

    def all_scores(self, user, query, keys, values) -> torch.Tensor:
        """(b, n_courses) scores of every course for each learner.

        A softmax over a course's two tokens is a sigmoid of their logit difference, so four (b, n)
        matrix products replace the (b, n, 2) tensors (the same scores, 2-3x faster on the CPU).
        """
        first = torch.sigmoid((query @ (keys[:, 0] - keys[:, 1]).T) * self.scale)  # weight of token 0 (CF)
        cf, text = user @ values[:, 0].T, user @ values[:, 1].T  # <user, value of each token>
        return text + first * (cf - text) + self.bias.weight.T


class NeuralHybrid(Recommender):
    """The attention network started at ALS. After ``fit``: ``history`` (one record per epoch; epoch 0 is ALS
    alone), ``best_epochs`` (the epochs the final network trained: the early-stopped choice, 0 when it fell
    back, else ``max_epochs``), ``fell_back`` and ``fallback_reason`` (why it scores as ALS; "" when it does
    not)."""

    name = "neural_hybrid"

    def __init__(
        self,
        dim: int = 64,
        negatives: int = 4,
        max_epochs: int = 20,
        patience: int = 2,
        learning_rate: float = 3e-3,
        batch_size: int = 4096,
        weight_decay: float = 1e-6,
        seed: int = 0,
        als_params: dict | None = None,
    ):
        self.params = dict(
            dim=dim,
            negatives=negatives,
            max_epochs=max_epochs,
            patience=patience,
            learning_rate=learning_rate,
            batch_size=batch_size,
            weight_decay=weight_decay,
            seed=seed,
        )
        self.als_params = als_params or {}
        self.history: list[dict] = []
        self.best_epochs = 0
        self.fell_back, self.fallback_reason = False, ""

    def _start(self, data: TrainData, als: Factorisation | None) -> None:
        """The inputs (ALS on ``data`` unless given) and a fresh network: epoch 0, the CF input alone."""
        torch.manual_seed(self.params["seed"])
        self.data = data
        self.cf = als or Factorisation("als", **self.als_params).fit(data)
        self.p = torch.from_numpy(self.cf.user_factors)
        self.q = torch.from_numpy(self.cf.item_factors)
        self.e = torch.from_numpy(np.array(data.course_vectors, dtype=np.float32))  # a writable copy
        self.profiles = torch.from_numpy(
            np.asarray(normalize(data.matrix @ data.course_vectors), dtype=np.float32)
        )
        dim = max(self.params["dim"], self.p.shape[1])  # wide enough to carry the ALS factors
        self.net = _Network(self.p.shape[1], self.e.shape[1], data.shape[1], dim)

    def _epochs(self, epochs: int):
        """Train the started network ``epochs`` epochs, yielding each epoch's record (also kept in
        ``history``)."""
        rng = np.random.default_rng(self.params["seed"])
        optimiser = torch.optim.Adam(
            self.net.parameters(), lr=self.params["learning_rate"], weight_decay=self.params["weight_decay"]
        )
        coo = self.data.matrix.tocoo()
        users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        size = self.params["batch_size"]
        for epoch in range(1, epochs + 1):
            self.net.train()
            order = rng.permutation(len(users))
            total = sum(
                self._step(optimiser, users[idx], items[idx], rng) * len(idx)
                for idx in np.array_split(order, range(size, len(order), size))
            )
            record = {"epoch": epoch, "loss": total / len(users)}
            self.history.append(record)
            yield record

    def _step(self, optimiser, learners: np.ndarray, positives: np.ndarray, rng) -> float:
        """One Adam step of the BPR loss on a batch of (learner, course) pairs, ``negatives`` sampled courses
        each."""
        negatives, learner = self.params["negatives"], torch.from_numpy(learners)
        # once per learner, then one per negative
        pooled = self.net.learners(self.p[learner], self.profiles[learner])
        user, query = (t.repeat_interleave(negatives, dim=0) for t in pooled)
        pos = torch.from_numpy(np.repeat(positives, negatives))
        neg = torch.from_numpy(rng.integers(0, self.data.shape[1], size=len(pos)))
        # each course's tokens once per batch
        courses, at = torch.unique(torch.cat([pos, neg]), return_inverse=True)
        keys, values = self.net.course_tokens(self.q[courses], self.e[courses])
        pos_at, neg_at = at[: len(pos)], at[len(pos) :]
        margin = self.net.pair_scores(user, query, keys[pos_at], values[pos_at], pos) - self.net.pair_scores(
            user, query, keys[neg_at], values[neg_at], neg
        )
        loss = -torch.nn.functional.logsigmoid(margin).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return loss.item()

    def _early_stop(self, data: TrainData, valid: dict) -> None:
        """``best_epochs``: the epoch with the best validation nDCG@10, epoch 0 (the CF input alone)
        included."""
        self._start(data, None)
        cf_ndcg = evaluate(self.cf, valid, ks=(10,))["ndcg@10"]
        self.history.append({"epoch": 0, "valid_ndcg@10": cf_ndcg})
        best, network_best, self.best_epochs = cf_ndcg, float("-inf"), 0
        for record in self._epochs(self.params["max_epochs"]):
            record["valid_ndcg@10"] = ndcg = evaluate(self, valid, ks=(10,))["ndcg@10"]
            network_best = max(network_best, ndcg)
            if ndcg > best:
                best, self.best_epochs = ndcg, record["epoch"]
            elif record["epoch"] - self.best_epochs >= self.params["patience"]:
                break
        self.fell_back = self.best_epochs == 0
        self.fallback_reason = (
            (
                f"the network's best validation nDCG@10 ({network_best:.4f}) does not beat its CF "
                f"input's (ALS, {cf_ndcg:.4f}): it scores as ALS"
            )
            if self.fell_back
            else ""
        )

    def fit(
        self,
        data: TrainData,
        valid_data: TrainData | None = None,
        valid: dict | None = None,
        als: Factorisation | None = None,
    ) -> "NeuralHybrid":
        """Early-stop on ``valid`` using ``valid_data`` (train minus the validation carve), then retrain on
        ``data``.

        ``als``: ALS already fitted on ``data`` with ``als_params`` (its factors are the CF input; not
        refitted).
        """
        # a refit starts from the network, not from an old fallback
        self.fell_back, self.fallback_reason = False, ""
        with torch.inference_mode(False), _one_thread():
            if valid:
                self._early_stop(valid_data, sample_learners(valid, TUNING_LEARNERS, self.params["seed"]))
            else:
                self.best_epochs, self.fell_back, self.fallback_reason = self.params["max_epochs"], False, ""
            self._start(data, als)
            list(self._epochs(self.best_epochs))
        return self

    @torch.no_grad()
    def score(self, rows: np.ndarray) -> np.ndarray:
        if self.fell_back:  # the network of epoch 0 ranks as ALS up to rounding: ALS's own scores are exact
            return self.cf.score(rows)
        self.net.eval()
        rows = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        user, query = self.net.learners(self.p[rows], self.profiles[rows])
        keys, values = self.net.course_tokens(self.q, self.e)
        return self.net.all_scores(user, query, keys, values).numpy()


@contextmanager
def _one_thread():
    """Torch on one thread: its multithreaded backward sums in a varying order, and a seed must give one
    model."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def save_state(model: NeuralHybrid, path) -> None:
    """The network's weights (a plain tensor file; loaded with ``weights_only=True``); when it fell back,
    those of epoch 0, which score as ALS."""
    torch.save(model.net.state_dict(), path)
