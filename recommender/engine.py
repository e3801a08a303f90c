"""The serving engine's core: candidates from the active model, stock and promotion adjustments
with their reasons, and the fallback chain, each item naming the strategy that produced it.

Relevance is the model's score rescaled to [0, 1] over the candidates (1 = the best); the
adjustments add to it, so their sizes read the same on every list. No FastAPI here.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace

import numpy as np

from recommender.snapshot import ServingSnapshot

PERSONAL = "personal"
SIMILAR = "similar"
SEGMENT_POPULAR = "segment_popular"
GLOBAL_POPULAR = "global_popular"


@dataclass(frozen=True)
class RankingWeights:
    """How much stock risk, overstock and promotions move an item (relevance is 0 to 1)."""

    stockout: float = 0.3
    overstock: float = 0.05
    promotion: float = 0.2
    candidates: int = 200


@dataclass(frozen=True)
class Adjustment:
    kind: str
    reason: str
    delta: float


@dataclass(frozen=True)
class WhyNot:
    """Why a product is not in a customer's list: where it ranked, what removed it, its stock
    state, and how far its score is from the last item shown."""

    product_id: str
    shown: bool
    rank: int | None  # 1-based rank among all candidates by adjusted score, None if filtered
    removed_by: list[str]
    stock: str
    score: float | None
    last_shown_score: float | None
    gap: float | None
    strategy: str


@dataclass(frozen=True)
class Item:
    product_id: str
    name: str
    score: float
    relevance: float
    strategy: str
    adjustments: list[Adjustment] = field(default_factory=list)


def _days(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def adjustments_for(
    snapshot: ServingSnapshot, product: int, weights: RankingWeights
) -> list[Adjustment]:
    """Stock risk, overstock and promotion adjustments of one product, with readable reasons,
    e.g. "12 in stock, 4 days of cover, restock in 10 days: -0.08"."""
    out: list[Adjustment] = []
    risk = snapshot.stockout_probability[product]
    if not math.isnan(risk) and risk > 0:
        parts = []
        if not math.isnan(snapshot.on_hand[product]):
            parts.append(f"{snapshot.on_hand[product]:g} in stock")
        if not math.isnan(snapshot.days_of_cover[product]):
            parts.append(f"{_days(snapshot.days_of_cover[product])} days of cover")
        if not math.isnan(snapshot.lead_time_days[product]):
            parts.append(f"restock in {_days(snapshot.lead_time_days[product])} days")
        parts.append(f"stockout probability {risk:.0%}")
        delta = -round(weights.stockout * float(risk), 4)
        out.append(Adjustment("stock", ", ".join(parts) + f": {delta:+.2f}", delta))
    if snapshot.overstock[product]:
        delta = round(weights.overstock, 4)
        out.append(Adjustment("overstock", f"overstocked: {delta:+.2f}", delta))
    promo = snapshot.promotions.get(product)
    if promo is not None:
        delta = round(weights.promotion * promo.discount_pct / 100, 4)
        out.append(
            Adjustment(
                "promotion",
                f"{promo.discount_pct:g}% off ({promo.promotion_id}) until "
                f"{promo.ends_at:%Y-%m-%d}: {delta:+.2f}",
                delta,
            )
        )
    return out


class Engine:
    """Holds the current snapshot; `swap` replaces it atomically (requests keep the one they
    started with)."""

    def __init__(self, snapshot: ServingSnapshot, weights: RankingWeights | None = None) -> None:
        self._snapshot = snapshot
        self._lock = threading.Lock()
        self.weights = weights or RankingWeights()

    @property
    def snapshot(self) -> ServingSnapshot:
        return self._snapshot

    def swap(self, snapshot: ServingSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def recommend(self, customer_id: str | None, k: int = 10) -> list[Item]:
        """Top `k` products for a customer: personal when the active model knows them (and they
        did not opt out), else popular in their segment, else popular overall; products out of
        stock, inactive or already bought are left out."""
        snap = self._snapshot
        allowed = snap.available.copy()
        bought = snap.bought.get(customer_id or "", np.empty(0, dtype=np.int64))
        allowed[bought] = False
        items: list[Item] = []
        row = snap.customer_index.get(customer_id or "")
        personal = (
            row is not None
            and customer_id not in snap.opted_out
            and snap.customer_vectors is not None
            and snap.product_vectors is not None
            and bool(np.any(snap.customer_vectors[row]))
        )
        if personal:
            assert snap.customer_vectors is not None and snap.product_vectors is not None
            scores = snap.product_vectors @ snap.customer_vectors[row]
            items = self._rank(snap, scores, allowed, PERSONAL, k)
        chain: list[tuple[str, np.ndarray | None]] = [
            (
                SEGMENT_POPULAR,
                snap.segment_popularity.get(snap.customer_segment.get(customer_id or "", "")),
            ),
            (GLOBAL_POPULAR, snap.popularity),
        ]
        for strategy, popularity in chain:
            if len(items) >= k or popularity is None:
                continue
            taken = allowed.copy()
            taken[[snap.product_index[i.product_id] for i in items]] = False
            if strategy == SEGMENT_POPULAR:
                taken &= popularity > 0  # only what the segment actually bought
            items += self._rank(snap, popularity.astype(float), taken, strategy, k - len(items))
        return items[:k]

    def _rank(
        self,
        snap: ServingSnapshot,
        scores: np.ndarray,
        allowed: np.ndarray,
        strategy: str,
        k: int,
    ) -> list[Item]:
        candidates = np.flatnonzero(allowed)
        if not len(candidates) or k <= 0:
            return []
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        order = order[: max(self.weights.candidates, k)]
        raw = scores[order]
        spread = float(raw.max() - raw.min())
        relevance = (raw - raw.min()) / spread if spread > 0 else np.ones(len(order))
        ranked = []
        for product, rel in zip(order.tolist(), relevance.tolist(), strict=True):
            adjustments = adjustments_for(snap, product, self.weights)
            score = rel + sum(a.delta for a in adjustments)
            ranked.append(
                Item(
                    product_id=snap.product_ids[product],
                    name=snap.names[product],
                    score=round(score, 4),
                    relevance=round(rel, 4),
                    strategy=strategy,
                    adjustments=adjustments,
                )
            )
        ranked.sort(key=lambda item: -item.score)
        return ranked[:k]

    def similar(self, product_id: str, k: int = 10) -> list[Item]:
        """Products nearest to `product_id` by the active model's vectors (cosine); without
        vectors, or for a product the model never saw, popular products instead. The anchor,
        inactive and out-of-stock products are left out.

        Raises:
            KeyError: unknown product id.
        """
        snap = self._snapshot
        anchor = snap.product_index[product_id]
        allowed = snap.available.copy()
        allowed[anchor] = False
        vectors = snap.product_vectors
        if vectors is not None and bool(np.any(vectors[anchor])):
            norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(vectors[anchor])
            scores = (vectors @ vectors[anchor]) / np.maximum(norms, 1e-12)
            return self._rank(snap, scores, allowed, SIMILAR, k)
        return self._rank(snap, snap.popularity.astype(float), allowed, GLOBAL_POPULAR, k)

    def why_not(self, customer_id: str | None, product_id: str, k: int = 10) -> WhyNot:
        """Explains a product's absence from (or place in) the customer's top `k`.

        Raises:
            KeyError: unknown product id.
        """
        snap = self._snapshot
        product = snap.product_index[product_id]
        shown = self.recommend(customer_id, k)
        removed: list[str] = []
        if not snap.active[product]:
            removed.append("inactive")
        if snap.on_hand[product] <= 0:
            removed.append("out of stock")
        bought = snap.bought.get(customer_id or "", np.empty(0, dtype=np.int64))
        if product in set(bought.tolist()):
            removed.append("already bought")
        stock = (
            "no stock record"
            if np.isnan(snap.on_hand[product])
            else f"{snap.on_hand[product]:g} in stock"
        )
        if not np.isnan(snap.stockout_probability[product]):
            stock += f", stockout probability {snap.stockout_probability[product]:.0%}"
        strategy = shown[0].strategy if shown else GLOBAL_POPULAR
        ids = [i.product_id for i in shown]
        if removed:
            return WhyNot(product_id, False, None, removed, stock, None, None, None, strategy)
        # Rank everything allowed with the same strategies, relevance rescaled over all of it,
        # so the product's score and the last shown item's score are on one scale.
        everything = Engine(snap, replace(self.weights, candidates=snap.n_products))
        ranked = everything.recommend(customer_id, snap.n_products)
        scores = {i.product_id: i.score for i in ranked}
        order = [i.product_id for i in ranked]
        last = scores.get(ids[-1]) if ids else None
        if product_id not in scores:
            return WhyNot(
                product_id, False, None, ["not a candidate"], stock, None, last, None, strategy
            )
        score = scores[product_id]
        gap = None if last is None else round(max(last - score, 0.0), 4)
        return WhyNot(
            product_id,
            product_id in ids,
            order.index(product_id) + 1,
            [],
            stock,
            score,
            last,
            gap,
            strategy,
        )
