"""One evaluator for every model: full ranking over all products on a later period.

For each customer with at least one order line in the period, the targets are the products
bought in it; products bought before the period are excluded from the ranking and from the
targets unless the shop allows repurchase. Slices: all customers, cold-start customers (at
most two distinct products bought in training) and new products (targets restricted to products
with no training interaction). Every per-customer figure comes with a bootstrap 95% interval
over customers; catalogue coverage (a distinct count, not a mean) is reported without one.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gnn import metrics
from gnn.snapshot import GraphSnapshot

if TYPE_CHECKING:
    from gnn.models.base import Recommender

KS = (10, 20)
COLD_MAX_INTERACTIONS = 2
SLICES = ("all", "cold_customers", "new_products")


@dataclass
class SliceResult:
    users: int
    metrics: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def value(self, name: str) -> float:
        return self.metrics[name][0]


@dataclass
class EvalResult:
    period: str
    slices: dict[str, SliceResult]

    def ndcg10(self) -> float:
        return self.slices["all"].value("ndcg@10")

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "slices": {
                name: {
                    "users": s.users,
                    "metrics": {
                        k: {"value": v[0], "low": _finite(v[1]), "high": _finite(v[2])}
                        for k, v in s.metrics.items()
                    },
                }
                for name, s in self.slices.items()
            },
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def content_unit_vectors(snapshot: GraphSnapshot) -> np.ndarray:
    """L2-normalised multi-hot rows (categories with ancestors, brand, attributes) per product:
    the item space in which intra-list diversity is measured, the same for every model."""
    rows, cols, width = snapshot.content_pairs()
    vectors = np.zeros((snapshot.n_products, max(width, 1)), dtype=np.float32)
    vectors[rows, cols] = 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class Evaluator:
    """Targets and exclusions for one period, built from the full snapshot."""

    def __init__(
        self,
        snapshot: GraphSnapshot,
        *,
        start_ms: int,
        end_ms: int,
        period: str,
        allow_repurchase: bool = False,
        unit_vectors: np.ndarray | None = None,
    ) -> None:
        self.period = period
        self.n_products = snapshot.n_products
        before = snapshot.ts_ms < start_ms
        inside = (snapshot.ts_ms >= start_ms) & (snapshot.ts_ms < end_ms)
        n_customers = snapshot.n_customers
        # What each customer bought before the period (exclusion; cold-start slice).
        history = _pairs(snapshot.customer[before], snapshot.product[before], n_customers)
        self.history = history
        train_products = np.zeros(self.n_products, dtype=bool)
        train_products[snapshot.product[before]] = True
        buyers = np.bincount(
            np.unique(snapshot.customer[before] * self.n_products + snapshot.product[before])
            % self.n_products,
            minlength=self.n_products,
        )
        active_customers = max(len(np.unique(snapshot.customer[before])), 1)
        self.buyer_share = buyers / active_customers
        self.allow_repurchase = allow_repurchase
        targets = _pairs(snapshot.customer[inside], snapshot.product[inside], n_customers)
        users, user_targets = [], []
        for customer, wanted in targets.items():
            if not allow_repurchase and customer in history:
                wanted = np.setdiff1d(wanted, history[customer], assume_unique=True)
            if len(wanted):
                users.append(customer)
                user_targets.append(wanted)
        order = np.argsort(users)
        self.users = np.asarray(users, dtype=np.int64)[order]
        self.targets = [user_targets[i] for i in order]
        self.history_size = np.array([len(history.get(int(u), ())) for u in self.users])
        self.new_product = ~train_products
        self.unit_vectors = (
            unit_vectors if unit_vectors is not None else content_unit_vectors(snapshot)
        )

    def sample(self, max_users: int, seed: int = 0) -> Evaluator:
        """The same period on at most `max_users` customers drawn at random (early stopping
        reads this); everything else is shared, not rebuilt."""
        if len(self.users) <= max_users:
            return self
        pick = np.sort(np.random.default_rng(seed).choice(len(self.users), max_users, False))
        other = copy.copy(self)
        other.users = self.users[pick]
        other.targets = [self.targets[i] for i in pick]
        other.history_size = self.history_size[pick]
        return other

    def top_k(self, model: Recommender, k: int = max(KS), chunk: int = 2048) -> np.ndarray:
        """[users, k] product indexes ranked by the model, with exclusions applied."""
        out = np.empty((len(self.users), k), dtype=np.int64)
        for start in range(0, len(self.users), chunk):
            users = self.users[start : start + chunk]
            scores = torch.as_tensor(model.score(users), dtype=torch.float32).clone()
            if not self.allow_repurchase:
                rows, cols = [], []
                for row, user in enumerate(users.tolist()):
                    bought = self.history.get(user)
                    if bought is not None:
                        rows.append(np.full(len(bought), row))
                        cols.append(bought)
                if rows:
                    scores[
                        torch.from_numpy(np.concatenate(rows)),
                        torch.from_numpy(np.concatenate(cols)),
                    ] = -torch.inf
            out[start : start + len(users)] = torch.topk(scores, k, dim=1).indices.numpy()
        return out

    def ndcg10(self, model: Recommender) -> float:
        """NDCG@10 over all users of the period, no intervals (what early stopping reads)."""
        if not len(self.users):
            return 0.0
        top = self.top_k(model, 10)
        hits = metrics.hit_matrix(top, self.targets)
        sizes = np.array([len(t) for t in self.targets])
        return float(metrics.ndcg_at(hits, sizes, 10).mean())

    def evaluate(self, model: Recommender, *, rounds: int = 1000, seed: int = 0) -> EvalResult:
        top = self.top_k(model)
        slices: dict[str, SliceResult] = {}
        everyone = np.ones(len(self.users), dtype=bool)
        cold = self.history_size <= COLD_MAX_INTERACTIONS
        slices["all"] = self._slice(top, self.targets, everyone, rounds, seed)
        slices["cold_customers"] = self._slice(top, self.targets, cold, rounds, seed)
        new_targets = [t[self.new_product[t]] for t in self.targets]
        has_new = np.array([len(t) > 0 for t in new_targets], dtype=bool)
        slices["new_products"] = self._slice(top, new_targets, has_new, rounds, seed)
        return EvalResult(self.period, slices)

    def _slice(
        self,
        top: np.ndarray,
        targets: list[np.ndarray],
        mask: np.ndarray,
        rounds: int,
        seed: int,
    ) -> SliceResult:
        rows = np.flatnonzero(mask)
        result = SliceResult(users=len(rows))
        if not len(rows):
            return result
        top = top[rows]
        wanted = [targets[i] for i in rows]
        sizes = np.array([len(t) for t in wanted])
        hits = metrics.hit_matrix(top, wanted)
        per_user: dict[str, np.ndarray] = {}
        for k in KS:
            per_user[f"recall@{k}"] = metrics.recall_at(hits, sizes, k)
            per_user[f"ndcg@{k}"] = metrics.ndcg_at(hits, sizes, k)
            per_user[f"hit@{k}"] = metrics.hit_rate_at(hits, k)
            per_user[f"mrr@{k}"] = metrics.mrr_at(hits, k)
        per_user["novelty@10"] = metrics.novelty(top[:, :10], self.buyer_share)
        per_user["diversity@10"] = metrics.intra_list_diversity(top[:, :10], self.unit_vectors)
        for name, values in per_user.items():
            result.metrics[name] = metrics.bootstrap_mean(values, rounds=rounds, seed=seed)
        # A distinct count is not a mean: resampling customers with replacement shrinks it, so
        # its bootstrap interval would not even contain the value. Coverage is reported bare.
        value = metrics.coverage(top[:, :10], self.n_products)
        result.metrics["coverage@10"] = (value, float("nan"), float("nan"))
        return result


def _pairs(customers: np.ndarray, products: np.ndarray, n_customers: int) -> dict[int, np.ndarray]:
    """Distinct products per customer."""
    if not len(customers):
        return {}
    n_products = int(products.max()) + 1
    keys = np.unique(customers.astype(np.int64) * n_products + products)
    owner, item = keys // n_products, keys % n_products
    bounds = np.flatnonzero(np.diff(owner)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(keys)]])
    return {int(owner[s]): item[s:e] for s, e in zip(starts, ends, strict=True)}
