"""The serving engine: candidates, filters and merchandising rules, stock- and promotion-aware
ranking with per-surface weights, diversity, and the fallback chain, each item naming the strategy
that produced it.

A list is built from tiers in fallback order (personal, then segment popular, category popular,
global popular; or similar / bought together / cart for product pages and carts). Within a tier,
relevance is the tier's score rescaled to [0, 1] over its candidates (1 = the best) and the
adjustments add to it, so their sizes read the same on every list; a later tier only fills
places the earlier ones could not. No FastAPI here.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from graph.errors import ConfigurationError
from recommender.snapshot import ServingSnapshot

PERSONAL = "personal"
SIMILAR = "similar"
BOUGHT_TOGETHER = "bought_together"
CART = "cart"
SEGMENT_POPULAR = "segment_popular"
CATEGORY_POPULAR = "category_popular"
GLOBAL_POPULAR = "global_popular"
PINNED = "pinned"

# Surfaces a list is served on; each has its own ranking weights.
SURFACES = ("home", "product", "cart", "email")
MS_PER_DAY = 86_400_000

# One fallback level: its strategy and how to score it, built only when the list reaches it.
# The scores: a score per product (nan: not a candidate, None: no tier), the candidate
# generators that proposed which products (for the item's `sources`), and, when known, the
# candidates themselves (saves a scan of every product).
TierScores = tuple[np.ndarray | None, dict[str, np.ndarray], np.ndarray | None]
Tier = tuple[str, Callable[[], TierScores]]


def _plain(build: Callable[[], np.ndarray | None]) -> Callable[[], TierScores]:
    return lambda: (build(), {}, None)


@dataclass(frozen=True)
class RankingWeights:
    """How much stock risk, overstock, promotions, rules and diversity move an item (relevance is
    0 to 1), how many candidates a tier keeps, and the per-category cap."""

    stockout: float = 0.3
    overstock: float = 0.05
    promotion: float = 0.2
    rule: float = 0.3  # size of a boost or bury rule that does not name its own
    diversity: float = 0.1  # penalty per item of the same category already above it
    max_per_category: int | None = None
    candidates: int = 200


DEFAULT_SURFACE_WEIGHTS: dict[str, RankingWeights] = {
    "home": RankingWeights(),
    # A product page shows neighbours of one product: same-category items are the point.
    "product": RankingWeights(diversity=0.0),
    "cart": RankingWeights(promotion=0.3, diversity=0.15),
    # An e-mail goes out in bulk and is read later: stock risk counts more, variety too.
    "email": RankingWeights(stockout=0.5, diversity=0.15, max_per_category=3),
}


def surface_weights(
    overrides: Mapping[str, Mapping[str, float | int | None]],
) -> dict[str, RankingWeights]:
    """The default weights per surface with the settings' overrides applied.

    Raises:
        ConfigurationError: an unknown surface or weight name.
    """
    known = {f.name for f in fields(RankingWeights)}
    out = dict(DEFAULT_SURFACE_WEIGHTS)
    for surface, values in overrides.items():
        if surface not in out:
            raise ConfigurationError(
                f"KGREC_SURFACE_WEIGHTS: unknown surface {surface!r}; known: {', '.join(SURFACES)}"
            )
        unknown = set(values) - known
        if unknown:
            raise ConfigurationError(
                f"KGREC_SURFACE_WEIGHTS[{surface!r}]: unknown weight(s) {sorted(unknown)}; "
                f"known: {sorted(known)}"
            )
        out[surface] = replace(out[surface], **values)  # type: ignore[arg-type]
    return out


@dataclass(frozen=True)
class Adjustment:
    kind: str
    reason: str
    delta: float


@dataclass(frozen=True)
class Filters:
    """Request-level include/exclude filters; categories reach their subcategories."""

    include_categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    include_brands: tuple[str, ...] = ()
    exclude_brands: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    max_per_category: int | None = None  # overrides the surface's cap


NO_FILTERS = Filters()

RuleAction = Literal["pin", "boost", "bury", "exclude"]
RuleTarget = Literal["product", "category", "brand"]


@dataclass(frozen=True)
class Rule:
    """A merchandising rule: pin a product at a position, boost or bury, or exclude a product,
    a category (with its subcategories) or a brand, on one surface and/or segment or everywhere."""

    rule_id: str
    action: RuleAction
    target_kind: RuleTarget
    target_id: str
    surface: str | None = None
    segment: str | None = None
    weight: float | None = None  # boost/bury size; None = the surface's `rule` weight
    position: int = 1  # pins only, 1-based
    note: str = ""

    def applies(self, surface: str, segment: str | None) -> bool:
        return (self.surface in (None, surface)) and (self.segment in (None, segment))

    def describe(self) -> str:
        where = []
        if self.surface:
            where.append(f"on {self.surface}")
        if self.segment:
            where.append(f"for segment {self.segment}")
        suffix = (" " + " ".join(where)) if where else ""
        return f"rule {self.rule_id} ({self.action} {self.target_kind} {self.target_id}{suffix})"


@dataclass(frozen=True)
class Item:
    product_id: str
    name: str
    score: float
    relevance: float
    strategy: str
    adjustments: list[Adjustment] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # candidate generators that proposed it
    category_id: str | None = None
    brand_id: str | None = None


@dataclass(frozen=True)
class WhyNot:
    """Why a product is not in a customer's list: where it ranked, what removed it, its stock
    state, and how far its score is from the last item shown."""

    product_id: str
    shown: bool
    rank: int | None  # 1-based rank among all candidates, None if filtered out
    removed_by: list[str]
    stock: str
    score: float | None
    last_shown_score: float | None
    gap: float | None
    strategy: str


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


def _fact_deltas(snapshot: ServingSnapshot, weights: RankingWeights) -> np.ndarray:
    """The summed stock/overstock/promotion delta of every product, rounded as the reasons are."""
    risk = np.nan_to_num(snapshot.stockout_probability, nan=0.0)
    delta = -np.round(weights.stockout * np.clip(risk, 0.0, None), 4)
    delta = delta + np.where(snapshot.overstock, round(weights.overstock, 4), 0.0)
    for product, promo in snapshot.promotions.items():
        delta[product] += round(weights.promotion * promo.discount_pct / 100, 4)
    return np.asarray(delta)


@dataclass(frozen=True)
class _Facts:
    """Per snapshot and surface, under one set of weights: each product's stock, overstock and
    promotion delta, and their adjustments with reasons as items need them (filled as
    products are shown)."""

    weights: RankingWeights
    delta: np.ndarray
    adjustments: dict[int, tuple[Adjustment, ...]]


@dataclass
class _Context:
    """What one list is built under: surface weights, the rules that apply, the allowed mask."""

    snap: ServingSnapshot
    surface: str
    weights: RankingWeights
    rules: list[Rule]
    allowed: np.ndarray
    rule_delta: np.ndarray | None  # None: no boost or bury applies
    facts: _Facts
    max_per_category: int | None

    @property
    def base_delta(self) -> np.ndarray:
        return self.facts.delta

    def adjustments(self, product: int) -> list[Adjustment]:
        """The product's stock, overstock and promotion adjustments (a new list)."""
        known = self.facts.adjustments.get(product)
        if known is None:
            known = tuple(adjustments_for(self.snap, product, self.facts.weights))
            self.facts.adjustments[product] = known
        return list(known)


class Engine:
    """Holds the current snapshot and rules; `swap` and `set_rules` replace them atomically
    (a request keeps the ones it started with).

    Args:
        weights: one `RankingWeights` for every surface, or weights per surface.
        repurchase_window_days: products bought longer ago than this are offered again
            (None: never, unless `allow_repurchase`).
    """

    def __init__(
        self,
        snapshot: ServingSnapshot,
        weights: RankingWeights | Mapping[str, RankingWeights] | None = None,
        *,
        rules: Iterable[Rule] = (),
        allow_repurchase: bool = False,
        repurchase_window_days: float | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._snapshot = snapshot
        self._rules: tuple[Rule, ...] = tuple(rules)
        self._lock = threading.Lock()
        if weights is None:
            self.surfaces = dict(DEFAULT_SURFACE_WEIGHTS)
        elif isinstance(weights, RankingWeights):
            self.surfaces = {s: weights for s in SURFACES}
        else:
            self.surfaces = {**DEFAULT_SURFACE_WEIGHTS, **weights}
        self.allow_repurchase = allow_repurchase
        self.repurchase_window_days = repurchase_window_days
        self.clock = clock
        self._facts: dict[tuple[int, str], _Facts] = {}

    # -- state ------------------------------------------------------------------------------
    @property
    def snapshot(self) -> ServingSnapshot:
        return self._snapshot

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @property
    def weights(self) -> RankingWeights:
        return self.surfaces["home"]

    def swap(self, snapshot: ServingSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot
            self._facts = {}

    def set_rules(self, rules: Iterable[Rule]) -> None:
        with self._lock:
            self._rules = tuple(rules)

    def set_weights(self, weights: Mapping[str, RankingWeights]) -> None:
        """New weights per surface (a promoted experiment's ranking); the cached stock and
        promotion deltas depend on them, so they go too."""
        with self._lock:
            self.surfaces = {**DEFAULT_SURFACE_WEIGHTS, **weights}
            self._facts = {}

    # -- surfaces ---------------------------------------------------------------------------
    def recommend(
        self,
        customer_id: str | None,
        k: int = 10,
        *,
        surface: str = "home",
        filters: Filters = NO_FILTERS,
    ) -> list[Item]:
        """Top `k` products for a customer: personal when the active model knows them (and they
        did not opt out), else popular in their segment, then in the categories they bought
        from, then overall; inactive, out-of-stock and already bought products are left out."""
        snap = self._snapshot
        ctx = self._context(snap, surface, customer_id, filters)
        return self._select(ctx, self._customer_tiers(snap, ctx, customer_id), k)

    def _customer_tiers(
        self, snap: ServingSnapshot, ctx: _Context, customer_id: str | None
    ) -> list[Tier]:
        tiers: list[Tier] = []
        if self._is_personal(snap, customer_id):
            tiers.append((PERSONAL, lambda: self._personal_candidates(snap, ctx, customer_id)))
        segment = snap.customer_segment.get(customer_id or "")
        seg_pop = snap.segment_popularity.get(segment or "")
        if seg_pop is not None:
            tiers.append((SEGMENT_POPULAR, _plain(lambda: _positive(seg_pop))))
        bought = snap.bought.get(customer_id or "", np.empty(0, dtype=np.int64))
        if len(bought) and customer_id not in snap.opted_out:
            tiers.append(
                (CATEGORY_POPULAR, _plain(lambda: self._category_popularity(snap, bought)))
            )
        tiers.append((GLOBAL_POPULAR, _plain(lambda: snap.popularity.astype(float))))
        return tiers

    def similar(self, product_id: str, k: int = 10, *, filters: Filters = NO_FILTERS) -> list[Item]:
        """Products nearest to `product_id` by the active model's vectors (cosine); then popular
        in its category, then popular overall. The anchor is left out.

        Raises:
            KeyError: unknown product id.
        """
        return self._anchored([product_id], k, "product", None, filters, co_purchase=None)

    def bought_together(
        self, product_id: str, k: int = 10, *, filters: Filters = NO_FILTERS
    ) -> list[Item]:
        """Products customers bought with `product_id` (co-purchase, normalised so best-sellers
        do not win by size alone); then similar, category popular, global popular.

        Raises:
            KeyError: unknown product id.
        """
        return self._anchored(
            [product_id], k, "product", None, filters, co_purchase=BOUGHT_TOGETHER
        )

    def cart(
        self,
        product_ids: list[str],
        k: int = 10,
        *,
        customer_id: str | None = None,
        filters: Filters = NO_FILTERS,
    ) -> list[Item]:
        """Cross-sell for a cart: what was bought with the cart's items, then what is similar to
        the cart as a whole, then popular in the cart's categories, then overall. Cart items
        (and, with a customer, what they already bought) are left out.

        Raises:
            KeyError: an unknown product id (the first one).
        """
        return self._anchored(product_ids, k, "cart", customer_id, filters, co_purchase=CART)

    def _anchored(
        self,
        product_ids: list[str],
        k: int,
        surface: str,
        customer_id: str | None,
        filters: Filters,
        *,
        co_purchase: str | None,
    ) -> list[Item]:
        """A list around anchor products (product page, cart), anchors left out: co-purchase
        with them (under the strategy name given; none for "similar"), then similar to them,
        then popular in their categories, then popular overall."""
        snap = self._snapshot
        anchors = [snap.product_index[p] for p in product_ids]
        ctx = self._context(snap, surface, customer_id, filters)
        ctx.allowed[anchors] = False
        tiers: list[Tier] = [
            (SIMILAR, _plain(lambda: self._cosine(snap, anchors))),
            (CATEGORY_POPULAR, _plain(lambda: self._category_popularity(snap, np.array(anchors)))),
            (GLOBAL_POPULAR, _plain(lambda: snap.popularity.astype(float))),
        ]
        if co_purchase is not None:
            tiers.insert(0, (co_purchase, _plain(lambda: self._copurchase(snap, anchors))))
        return self._select(ctx, tiers, k)

    def agreement(self, product_a: str, product_b: str) -> float:
        """Cosine of two products' vectors in the active model, clipped to [0, 1] (0 without
        vectors): how much the model agrees that one explains the other."""
        snap = self._snapshot
        vectors = snap.product_vectors
        a, b = snap.product_index.get(product_a), snap.product_index.get(product_b)
        if vectors is None or a is None or b is None:
            return 0.0
        norms = snap.product_norms  # computed once per snapshot
        norm = float(norms[a] * norms[b])
        return 0.0 if norm == 0 else max(0.0, min(1.0, float(vectors[a] @ vectors[b]) / norm))

    # -- why not ----------------------------------------------------------------------------
    def why_not(
        self,
        customer_id: str | None,
        product_id: str,
        k: int = 10,
        *,
        surface: str = "home",
        filters: Filters = NO_FILTERS,
    ) -> WhyNot:
        """Explains a product's absence from (or place in) the customer's top `k`: the filters
        or rules that removed it, else its rank and score gap to the last item shown.

        Raises:
            KeyError: unknown product id.
        """
        snap = self._snapshot
        product = snap.product_index[product_id]
        shown = self.recommend(customer_id, k, surface=surface, filters=filters)
        removed = self._removed_by(snap, surface, customer_id, filters, product)
        stock = (
            "no stock record"
            if np.isnan(snap.on_hand[product])
            else f"{snap.on_hand[product]:g} in stock"
        )
        if not np.isnan(snap.stockout_probability[product]):
            stock += f", stockout probability {snap.stockout_probability[product]:.0%}"
        strategy = shown[0].strategy if shown else GLOBAL_POPULAR
        ids = [i.product_id for i in shown]
        last = shown[-1].score if shown else None
        if removed:
            return WhyNot(product_id, False, None, removed, stock, None, last, None, strategy)
        # Rank everything allowed with the same tiers, relevance rescaled over all of it, so the
        # product's score and the last shown item's are on one scale; stop once it is placed.
        wide = replace(self.surfaces[surface], candidates=snap.n_products)
        ctx = self._context(snap, surface, customer_id, filters)
        ctx.weights = wide
        ranked = self._select(
            ctx, self._customer_tiers(snap, ctx, customer_id), snap.n_products, until=product
        )
        if not ranked or ranked[-1].product_id != product_id:
            return WhyNot(
                product_id, False, None, ["not a candidate"], stock, None, last, None, strategy
            )
        scores = {i.product_id: i.score for i in ranked}
        if ids and ids[-1] in scores:
            last = scores[ids[-1]]
        score = ranked[-1].score
        gap = None if last is None else round(max(last - score, 0.0), 4)
        return WhyNot(
            product_id, product_id in ids, len(ranked), [], stock, score, last, gap, strategy
        )

    def _removed_by(
        self,
        snap: ServingSnapshot,
        surface: str,
        customer_id: str | None,
        filters: Filters,
        product: int,
    ) -> list[str]:
        removed: list[str] = []
        if not snap.active[product]:
            removed.append("inactive")
        if snap.on_hand[product] <= 0:
            removed.append("out of stock")
        history = snap.bought.get(customer_id or "")
        if history is not None and not self.allow_repurchase:
            where = np.flatnonzero(history == product)
            if len(where):
                blocked = self._history(snap, customer_id)
                if product in set(blocked.tolist()):
                    when = snap.bought_at.get(customer_id or "")
                    text = "already bought"
                    if when is not None and len(when) > where[0] and when[where[0]]:
                        day = datetime.fromtimestamp(when[where[0]] / 1000, UTC)
                        text += f" on {day:%Y-%m-%d}"
                    if self.repurchase_window_days is not None:
                        text += f" (offered again after {self.repurchase_window_days:g} days)"
                    removed.append(text)
        for name, members in self._filter_masks(snap, filters):
            if not members[product]:
                removed.append(f"filter {name}")
        segment = snap.customer_segment.get(customer_id or "")
        for rule in self._rules:
            if (
                rule.action == "exclude"
                and rule.applies(surface, segment)
                and product in set(self._members(snap, rule).tolist())
            ):
                removed.append(f"excluded by {rule.describe()}")
        return removed

    # -- building blocks --------------------------------------------------------------------
    def _context(
        self, snap: ServingSnapshot, surface: str, customer_id: str | None, filters: Filters
    ) -> _Context:
        if surface not in self.surfaces:
            raise ValueError(f"unknown surface {surface!r}; known: {', '.join(self.surfaces)}")
        weights = self.surfaces[surface]
        allowed = snap.available.copy()
        allowed[self._history(snap, customer_id)] = False
        for _name, mask in self._filter_masks(snap, filters):
            allowed &= mask
        segment = snap.customer_segment.get(customer_id or "")
        rules = [r for r in self._rules if r.applies(surface, segment)]
        rule_delta = None
        for rule in rules:
            members = self._members(snap, rule)
            if rule.action == "exclude":
                allowed[members] = False
            elif rule.action in ("boost", "bury"):
                size = weights.rule if rule.weight is None else rule.weight
                if rule_delta is None:
                    rule_delta = np.zeros(snap.n_products)
                rule_delta[members] += size if rule.action == "boost" else -size
        key = (id(snap), surface)
        facts = self._facts.get(key)
        # The weights are checked too: a request that read them just before `set_weights`
        # must neither use nor leave behind facts of the other weights.
        if facts is None or facts.weights is not weights:
            facts = self._facts[key] = _Facts(weights, _fact_deltas(snap, weights), {})
        cap = filters.max_per_category or weights.max_per_category
        return _Context(snap, surface, weights, rules, allowed, rule_delta, facts, cap)

    def _filter_masks(
        self, snap: ServingSnapshot, filters: Filters
    ) -> list[tuple[str, np.ndarray]]:
        out = []
        n = snap.n_products

        def union(groups: dict[str, np.ndarray], keys: tuple[str, ...]) -> np.ndarray:
            mask = np.zeros(n, dtype=bool)
            for key in keys:
                members = groups.get(key)
                if members is not None:
                    mask[members] = True
            return mask

        if filters.include_categories:
            out.append(
                ("include_categories", union(snap.category_members, filters.include_categories))
            )
        if filters.exclude_categories:
            mask = ~union(snap.category_members, filters.exclude_categories)
            out.append(("exclude_categories", mask))
        if filters.include_brands:
            out.append(("include_brands", union(snap.brand_members, filters.include_brands)))
        if filters.exclude_brands:
            out.append(("exclude_brands", ~union(snap.brand_members, filters.exclude_brands)))
        prices = snap.prices if snap.prices is not None else np.full(n, np.nan)
        if filters.min_price is not None:
            out.append(("min_price", np.nan_to_num(prices, nan=-np.inf) >= filters.min_price))
        if filters.max_price is not None:
            out.append(("max_price", np.nan_to_num(prices, nan=np.inf) <= filters.max_price))
        return out

    def _members(self, snap: ServingSnapshot, rule: Rule) -> np.ndarray:
        empty = np.empty(0, dtype=np.int64)
        if rule.target_kind == "product":
            index = snap.product_index.get(rule.target_id)
            return empty if index is None else np.array([index], dtype=np.int64)
        groups = snap.category_members if rule.target_kind == "category" else snap.brand_members
        return groups.get(rule.target_id, empty)

    def _history(self, snap: ServingSnapshot, customer_id: str | None) -> np.ndarray:
        """Products the customer may not be offered again (already bought)."""
        bought = snap.bought.get(customer_id or "")
        if bought is None or self.allow_repurchase:
            return np.empty(0, dtype=np.int64)
        if self.repurchase_window_days is None:
            return bought
        when = snap.bought_at.get(customer_id or "")
        if when is None or len(when) != len(bought):
            return bought
        cutoff = self.clock().timestamp() * 1000 - self.repurchase_window_days * MS_PER_DAY
        return bought[when >= cutoff]

    def _is_personal(self, snap: ServingSnapshot, customer_id: str | None) -> bool:
        row = snap.customer_index.get(customer_id or "")
        return not (
            row is None
            or customer_id in snap.opted_out
            or snap.customer_vectors is None
            or snap.product_vectors is None
            or not snap.customer_has_vector[row]
        )

    def _personal_candidates(
        self, snap: ServingSnapshot, ctx: _Context, customer_id: str | None
    ) -> TierScores:
        """The personal tier's candidates: the model's best, plus what co-purchase, the
        customer's categories and running promotions propose; all scored by the model."""
        assert snap.customer_vectors is not None and snap.product_vectors is not None
        row = snap.customer_index[customer_id or ""]
        # The vectors' own precision: only the pool's scores are widened (exactly) to rank.
        scores = np.asarray(snap.product_vectors @ snap.customer_vectors[row])
        history = snap.bought.get(customer_id or "", np.empty(0, dtype=np.int64))
        extra = 20
        generators: dict[str, np.ndarray] = {
            "embedding": _top(scores, ctx.allowed, ctx.weights.candidates)
        }
        if len(history):
            # Sparse: only the products the history reaches, not a pass over the catalogue.
            near, weight = self._copurchase_sparse(snap, history)
            generators["co_purchase"] = _best(near, weight, ctx.allowed, extra)
            same = self._category_products(snap, history)
            generators["taxonomy"] = _best(same, snap.popularity[same], ctx.allowed, extra)
        if snap.promotions:
            keys = snap.promoted
            keys = keys[ctx.allowed[keys]]
            generators["promotion"] = keys[np.argsort(-scores[keys], kind="stable")[:extra]]
        pool = _union(snap.n_products, generators.values())
        if len(pool) > ctx.weights.candidates:
            # The other generators add candidates, but the model still decides which reach the
            # ranking: rescaling relevance over many weak extras favoured them (measured: test
            # NDCG@10 0.1136 with this cut, 0.1097 without, 1M-line shop).
            pool = _ranked(pool, scores[pool], ctx.weights.candidates)
        return scores, generators, pool

    def _cosine(self, snap: ServingSnapshot, anchors: list[int]) -> np.ndarray | None:
        vectors = snap.product_vectors
        if vectors is None:
            return None
        anchor = vectors[anchors].mean(axis=0)
        if not bool(np.any(anchor)):
            return None
        norms = snap.product_norms * float(np.linalg.norm(anchor))
        return np.asarray((vectors @ anchor) / np.maximum(norms, 1e-12), dtype=float)

    def _copurchase(self, snap: ServingSnapshot, anchors: Iterable[int] | np.ndarray) -> np.ndarray:
        """Co-purchase weights with the anchors (customers who bought both, divided by the
        square root of each product's buyers: cosine on buyer sets), summed over the anchors'
        kept neighbours; nan where nobody bought both."""
        out = np.full(snap.n_products, np.nan)
        products, weights = self._copurchase_sparse(snap, anchors)
        out[products] = weights
        return out

    def _copurchase_sparse(
        self, snap: ServingSnapshot, anchors: Iterable[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`_copurchase` as the products with a weight (ascending) and their weights."""
        top = snap.copurchase_top
        if top is None:
            return np.empty(0, dtype=np.int64), np.empty(0)
        rows = np.asarray(list(anchors) if not isinstance(anchors, np.ndarray) else anchors)
        index, weight = top[0][rows].ravel(), top[1][rows].ravel()
        keep = index >= 0
        sums = np.bincount(index[keep], weights=weight[keep], minlength=snap.n_products)
        products = np.flatnonzero(sums > 0)
        return products, sums[products]

    def _category_products(self, snap: ServingSnapshot, anchors: np.ndarray) -> np.ndarray:
        """The products of the anchors' categories (subcategories included), ascending."""
        groups = []
        if snap.product_category:
            for category in {snap.product_category[a] for a in anchors.tolist()}:
                members = snap.category_members.get(category) if category is not None else None
                if members is not None:
                    groups.append(members)
        return _union(snap.n_products, groups)

    def _category_popularity(self, snap: ServingSnapshot, anchors: np.ndarray) -> np.ndarray:
        """Popularity restricted to the anchors' categories (nan elsewhere)."""
        out = np.full(snap.n_products, np.nan)
        members = self._category_products(snap, anchors)
        out[members] = snap.popularity[members]
        return out

    def _select(
        self,
        ctx: _Context,
        tiers: list[Tier],
        k: int,
        until: int | None = None,
    ) -> list[Item]:
        """Fills the list tier by tier: candidates rescaled to [0, 1], adjusted, then picked
        greedily with the diversity penalty and the per-category cap; pins go in last."""
        snap = ctx.snap
        if k <= 0:
            return []
        pins = [
            r
            for r in ctx.rules
            if r.action == "pin"
            and r.target_kind == "product"
            and r.target_id in snap.product_index
            and ctx.allowed[snap.product_index[r.target_id]]
        ]
        pinned = {snap.product_index[r.target_id] for r in pins}
        taken = np.zeros(snap.n_products, dtype=bool)
        taken[list(pinned)] = True
        chosen: list[Item] = []
        codes = snap.category_codes
        per_category = np.zeros(int(codes.max(initial=-1)) + 2, dtype=np.int64)  # [-1]: none
        done = False
        for strategy, build in tiers:
            if len(chosen) + len(pinned) >= k or done:
                break
            scores, generators, candidates = build()
            if scores is None:
                continue
            if candidates is None:
                pool = _top(scores, ctx.allowed & ~taken, max(ctx.weights.candidates, k))
            else:
                pool = candidates[ctx.allowed[candidates] & ~taken[candidates]]
                pool = pool[np.lexsort((pool, -scores[pool]))]  # candidates in any order
            if not len(pool):
                continue
            member_sets = {name: set(members.tolist()) for name, members in generators.items()}
            taken[pool] = True
            raw = scores[pool].astype(float)
            spread = float(raw.max() - raw.min())
            relevance = (raw - raw.min()) / spread if spread > 0 else np.ones(len(pool))
            adjusted = relevance + ctx.base_delta[pool]
            if ctx.rule_delta is not None:
                adjusted += ctx.rule_delta[pool]
            picks = _greedy(
                adjusted,
                codes[pool],
                per_category,
                ctx.weights.diversity,
                ctx.max_per_category,
            )
            for best, penalty in picks:
                product = int(pool[best])
                chosen.append(
                    self._item(ctx, product, float(relevance[best]), strategy, member_sets, penalty)
                )
                done = product == until
                if len(chosen) + len(pinned) >= k or done:
                    break
        if until is not None:
            return chosen  # a why-not ranking: pins do not move the product's own rank
        for rule in sorted(pins, key=lambda r: r.position):
            product = snap.product_index[rule.target_id]
            item = self._item(ctx, product, 1.0, PINNED, {}, 0.0)
            pin = Adjustment("rule", f"pinned by {rule.describe()}", 0.0)
            adjustments = [*item.adjustments, pin]
            item = replace(item, adjustments=adjustments)
            chosen.insert(min(max(rule.position, 1) - 1, len(chosen)), item)
        return chosen[:k]

    def _item(
        self,
        ctx: _Context,
        product: int,
        relevance: float,
        strategy: str,
        generators: dict[str, set[int]],
        diversity_penalty: float,
    ) -> Item:
        snap = ctx.snap
        adjustments = ctx.adjustments(product)
        for rule in ctx.rules:
            if rule.action in ("boost", "bury") and product in set(
                self._members(snap, rule).tolist()
            ):
                size = ctx.weights.rule if rule.weight is None else rule.weight
                delta = round(size if rule.action == "boost" else -size, 4)
                adjustments.append(Adjustment("rule", f"{rule.describe()}: {delta:+.2f}", delta))
        if diversity_penalty > 0:
            category = snap.category_name(snap.product_category[product])
            delta = -round(diversity_penalty, 4)
            adjustments.append(
                Adjustment(
                    "diversity", f"more of {category} already in the list: {delta:+.2f}", delta
                )
            )
        score = relevance + sum(a.delta for a in adjustments)
        sources = [name for name, members in generators.items() if product in members]
        return Item(
            product_id=snap.product_ids[product],
            name=snap.names[product],
            score=round(score, 4),
            relevance=round(relevance, 4),
            strategy=strategy,
            adjustments=adjustments,
            sources=sources or [strategy],
            category_id=snap.product_category[product] if snap.product_category else None,
            brand_id=snap.product_brand[product] if snap.product_brand else None,
        )


def _greedy(
    adjusted: np.ndarray,
    codes: np.ndarray,
    per_category: np.ndarray,
    diversity: float,
    cap: int | None,
) -> Iterator[tuple[int, float]]:
    """Positions in the order a greedy diversity re-rank picks them, with their penalty: each
    time the best effective score (adjusted minus `diversity` per item of its category already
    chosen; ties to the earlier position), categories at `cap` skipped. `per_category` (items
    chosen per category code; code -1, no category, never counts) is updated before each pick
    is handed out, so a caller that stops early leaves it right.

    Items of one category share their penalty, so only each category's best item can be next:
    a heap holds one entry per category, and a pick changes only its own category's entry.
    Within a category the items are in order of adjusted score; two that differ can still
    round to the same effective score, so the entry is the earliest of those tied with the
    best (the picks are exactly those of re-scoring every item after every pick)."""
    order = np.argsort(-adjusted, kind="stable")  # best first, ties to the earlier position
    grouped = order[np.argsort(codes[order], kind="stable")]  # by category, best first in each
    in_order = codes[grouped]
    cuts = (np.flatnonzero(in_order[1:] != in_order[:-1]) + 1).tolist()
    listed = grouped.tolist()
    runs = [listed[a:b] for a, b in zip([0, *cuts], [*cuts, len(listed)], strict=True)]
    values, groups = adjusted.tolist(), codes.tolist()

    def entry(run: int, count: int) -> tuple[float, int, int, int]:
        items = runs[run]
        best = values[items[0]] - diversity * count
        at = 0
        for i in range(1, len(items)):
            if values[items[i]] - diversity * count != best:
                break
            if items[i] < items[at]:
                at = i
        return -best, items[at], run, at

    def counted(group: int) -> int:
        return int(per_category[group]) if group >= 0 else 0

    heads = [
        entry(run, counted(groups[items[0]]))
        for run, items in enumerate(runs)
        if items and (cap is None or groups[items[0]] < 0 or counted(groups[items[0]]) < cap)
    ]
    heapq.heapify(heads)
    while heads:
        _, position, run, at = heapq.heappop(heads)
        runs[run].pop(at)
        group = groups[position]
        count = counted(group)
        if group >= 0:
            per_category[group] = count + 1
        yield position, diversity * count
        if group >= 0:
            count += 1
            if cap is not None and count >= cap:
                continue
        if runs[run]:
            heapq.heappush(heads, entry(run, count))


def _positive(values: np.ndarray) -> np.ndarray:
    """Popularity as tier scores: only products with at least one buyer are candidates."""
    out = values.astype(float)
    out[out <= 0] = np.nan
    return out


def _union(n: int, groups: Iterable[np.ndarray]) -> np.ndarray:
    """The products in any of the groups, ascending (a mask: cheaper than sorting)."""
    mask = np.zeros(n, dtype=bool)
    for group in groups:
        mask[group] = True
    return np.flatnonzero(mask)


def _top(scores: np.ndarray, allowed: np.ndarray, m: int) -> np.ndarray:
    """Indexes of the `m` best allowed products with a score (not nan), best first; ties: lower
    index first. A partition of the whole catalogue costs more than the rest of a list (117 us
    for 10k values, numpy 2.4): on a large catalogue a strided sample's order statistic bounds
    the m-th best, so only the ~2m values above it are gathered and sorted (exact: the bound
    is used only when at least m values reach it; nan never does)."""
    if m <= 0:
        return np.empty(0, dtype=np.int64)
    values = np.where(allowed, scores, np.nan)
    if len(values) >= 32 * m:
        sample = values[:: len(values) // (4 * m)]
        sample = sample[~np.isnan(sample)]
        at = 2 * m * len(sample) // len(values) + 1  # ~2m of the catalogue above the bound
        if at <= len(sample):
            bound = np.partition(sample, len(sample) - at)[len(sample) - at]
            candidates = np.flatnonzero(values >= bound)
            if len(candidates) >= m:
                return _ranked(candidates, values[candidates], m)
    candidates = np.flatnonzero(~np.isnan(values))
    return _ranked(candidates, values[candidates], m)


def _best(products: np.ndarray, scores: np.ndarray, allowed: np.ndarray, m: int) -> np.ndarray:
    """`_top` over some products only (`scores` parallel to `products`, ascending)."""
    keep = allowed[products] & ~np.isnan(scores)
    return _ranked(products[keep], scores[keep], m)


def _ranked(candidates: np.ndarray, values: np.ndarray, m: int) -> np.ndarray:
    """The `m` candidates (ascending) with the highest values, best first, ties to the lower
    index: a stable sort keeps ties in the candidates' order (every candidate tied with the
    m-th is kept until the sort, so the cut does not depend on how a partition happened to
    split them)."""
    if m <= 0:
        return candidates[:0]
    negated = -values
    if len(candidates) > m:
        near = negated <= np.partition(negated, m - 1)[m - 1]
        candidates, negated = candidates[near], negated[near]
    order = np.argsort(negated, kind="stable")[:m]
    return candidates[order]
