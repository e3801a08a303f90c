"""The engine core on a hand-built snapshot: strategies, filters, adjustments with reasons."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from graph.errors import ConfigurationError
from recommender.engine import (
    GLOBAL_POPULAR,
    PERSONAL,
    SEGMENT_POPULAR,
    SIMILAR,
    Engine,
    Filters,
    Item,
    RankingWeights,
    Rule,
    _best,
    _greedy,
    _top,
    adjustments_for,
    surface_weights,
)
from recommender.snapshot import Promotion, ServingSnapshot, copurchase_counts

NAN = float("nan")


def snapshot() -> ServingSnapshot:
    products = ["P0", "P1", "P2", "P3", "P4", "P5"]
    # Customer C0 likes P1 most, then P2; P4 is out of stock; P5 inactive.
    product_vectors = np.array(
        [[0.0, 1.0], [1.0, 0.0], [0.9, 0.1], [0.1, 0.9], [1.0, 0.0], [1.0, 0.0]], np.float32
    )
    customer_vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], np.float32)
    return ServingSnapshot(
        version_id="v1",
        product_ids=products,
        product_index={p: i for i, p in enumerate(products)},
        names=[f"name {p}" for p in products],
        active=np.array([True, True, True, True, True, False]),
        on_hand=np.array([5.0, 12.0, 30.0, NAN, 0.0, 9.0]),
        lead_time_days=np.array([7.0, 10.0, 7.0, NAN, 7.0, 7.0]),
        days_of_cover=np.array([NAN, 4.0, 20.0, NAN, 0.0, 9.0]),
        stockout_probability=np.array([NAN, 0.25, 0.0, NAN, 1.0, 0.0]),
        overstock=np.array([False, False, True, False, False, False]),
        promotions={3: Promotion("PR9", 20.0, datetime(2030, 1, 31, tzinfo=UTC))},
        popularity=np.array([50.0, 10.0, 5.0, 40.0, 99.0, 99.0]),
        customer_index={"C0": 0, "C1": 1, "C2": 2},
        customer_segment={"C0": "A", "C1": "B", "C2": "B"},
        opted_out=frozenset({"C1"}),
        segment_popularity={"B": np.array([0.0, 0.0, 7.0, 0.0, 0.0, 0.0])},
        bought={"C0": np.array([2])},
        customer_vectors=customer_vectors,
        product_vectors=product_vectors,
    )


def test_stock_and_promotion_reasons_name_their_size() -> None:
    snap = snapshot()
    weights = RankingWeights(stockout=0.32, promotion=0.2, overstock=0.05)
    [stock] = adjustments_for(snap, 1, weights)
    assert stock.delta == -0.08
    assert stock.reason == (
        "12 in stock, 4 days of cover, restock in 10 days, stockout probability 25%: -0.08"
    )
    [promo] = adjustments_for(snap, 3, weights)
    assert promo.delta == 0.04 and promo.reason == "20% off (PR9) until 2030-01-31: +0.04"
    [over] = adjustments_for(snap, 2, weights)
    assert over.kind == "overstock" and over.delta == 0.05


def test_personal_list_leaves_out_bought_unstocked_and_inactive_products() -> None:
    items = Engine(snapshot()).recommend("C0", k=4)
    ids = [i.product_id for i in items]
    assert ids[0] == "P1" and items[0].strategy == PERSONAL
    assert not {"P2", "P4", "P5"} & set(ids)  # bought, out of stock, inactive
    assert all(i.strategy == PERSONAL for i in items)
    first = items[0]
    assert first.score == round(first.relevance + sum(a.delta for a in first.adjustments), 4)


def test_opted_out_and_unknown_customers_fall_back() -> None:
    engine = Engine(snapshot())
    opted_out = engine.recommend("C1", k=3)
    assert opted_out[0].product_id == "P2" and opted_out[0].strategy == SEGMENT_POPULAR
    assert all(i.strategy == GLOBAL_POPULAR for i in opted_out[1:])
    unknown = engine.recommend("nobody", k=3)
    assert [i.strategy for i in unknown] == [GLOBAL_POPULAR] * 3
    assert [i.product_id for i in unknown][:2] == ["P0", "P3"]  # P4, P5 filtered
    no_vector = engine.recommend("C2", k=1)  # known, zero vector: segment popular
    assert no_vector[0].strategy == SEGMENT_POPULAR


def test_a_promotion_moves_a_product_up() -> None:
    snap = snapshot()
    weights = RankingWeights(promotion=2.0)
    plain = Engine(replace(snap, promotions={}), weights).recommend("nobody", k=3)
    promoted = Engine(snap, weights).recommend("nobody", k=3)
    assert plain[0].product_id == "P0" and promoted[0].product_id == "P3"
    assert promoted[0].adjustments[0].kind == "promotion"


def test_swap_replaces_the_snapshot_whole() -> None:
    engine = Engine(snapshot())
    before = engine.recommend("C0", k=1)[0].product_id
    flipped = replace(snapshot(), customer_vectors=np.array([[0, 1], [0, 1], [0, 0]], np.float32))
    engine.swap(flipped)
    after = engine.recommend("C0", k=1)[0].product_id
    assert (before, after) == ("P1", "P0")


def test_similar_products_by_cosine_and_popular_without_vectors() -> None:
    engine = Engine(snapshot())
    similar = engine.similar("P1", k=3)
    # P2 (0.9, 0.1) is nearest to P1 (1, 0); P4 is out of stock, P5 inactive.
    assert [i.product_id for i in similar][:2] == ["P2", "P3"]
    assert all(i.strategy == SIMILAR for i in similar) and "P1" not in [
        i.product_id for i in similar
    ]
    plain = Engine(replace(snapshot(), product_vectors=None)).similar("P1", k=2)
    assert [i.strategy for i in plain] == [GLOBAL_POPULAR] * 2


def test_why_not_names_the_filter_or_the_gap() -> None:
    engine = Engine(snapshot())
    bought = engine.why_not("C0", "P2", k=2)
    assert not bought.shown and bought.removed_by == ["already bought"]
    assert bought.stock == "30 in stock, stockout probability 0%"
    out = engine.why_not("C0", "P4", k=2)
    assert out.removed_by == ["out of stock"] and out.rank is None
    assert engine.why_not("C0", "P5", k=2).removed_by == ["inactive"]
    shown = engine.why_not("C0", "P1", k=2)
    assert shown.shown and shown.rank == 1 and shown.gap == 0.0
    # C0's candidates are P1, P3, P0 (P2, P4, P5 filtered); with k = 1 the rest are ranked.
    lower = engine.why_not("C0", "P0", k=1)
    assert not lower.shown and lower.rank == 3 and lower.removed_by == []
    assert lower.gap is not None and lower.gap > 0
    assert lower.gap == round(lower.last_shown_score - lower.score, 4)  # type: ignore[operator]
    assert lower.strategy == PERSONAL


def shop() -> ServingSnapshot:
    """A richer snapshot: categories (Pens under Office), brands, prices, purchase dates."""
    base = snapshot()
    bought = {"C0": np.array([2]), "C1": np.array([1, 3]), "C2": np.array([1, 3, 0])}
    return replace(
        base,
        prices=np.array([5.0, 12.0, 30.0, 8.0, 3.0, 1.0]),
        product_category=["paper", "pens", "pens", "ink", "pens", "paper"],
        product_brand=["acme", "acme", "inko", "inko", None, "acme"],
        category_parent={"pens": "office", "paper": "office", "ink": "office"},
        category_names={"pens": "Pens", "paper": "Paper", "ink": "Ink", "office": "Office"},
        bought=bought,
        bought_at={
            "C0": np.array([int(datetime(2030, 1, 1, tzinfo=UTC).timestamp() * 1000)]),
            "C1": np.array([0, 0]),
            "C2": np.array([0, 0, 0]),
        },
        copurchase=copurchase_counts(bought, 6),
    )


def ids(items: list[Item]) -> list[str]:
    return [i.product_id for i in items]


def test_filters_include_and_exclude_categories_brands_and_prices() -> None:
    engine = Engine(shop())
    assert set(
        ids(engine.recommend("nobody", k=5, filters=Filters(include_categories=("pens",))))
    ) == {"P1", "P2"}  # P4 is out of stock
    office = ids(engine.recommend("nobody", k=5, filters=Filters(include_categories=("office",))))
    assert set(office) == {"P0", "P1", "P2", "P3"}  # a category reaches its subcategories
    no_acme = ids(engine.recommend("nobody", k=5, filters=Filters(exclude_brands=("acme",))))
    assert set(no_acme) == {"P2", "P3"}
    cheap = ids(engine.recommend("nobody", k=5, filters=Filters(max_price=10)))
    assert set(cheap) == {"P0", "P3"}
    why = engine.why_not("nobody", "P2", filters=Filters(max_price=10))
    assert why.removed_by == ["filter max_price"]


def test_rules_pin_boost_bury_and_exclude_with_reasons() -> None:
    snap = shop()
    plain = ids(Engine(snap).recommend("nobody", k=4))
    assert plain[:2] == ["P0", "P3"]
    bury = Rule("R1", "bury", "brand", "acme", weight=2.0)
    buried = Engine(snap, rules=[bury]).recommend("nobody", k=4)
    assert ids(buried)[0] == "P3" and ids(buried)[-1] in {"P0", "P1"}
    reason = next(
        a for i in buried if i.product_id == "P0" for a in i.adjustments if a.kind == "rule"
    )
    assert reason.delta == -2.0 and "R1" in reason.reason and "bury brand acme" in reason.reason
    pin = Rule("R2", "pin", "product", "P2", position=1)
    pinned = Engine(snap, rules=[pin]).recommend("nobody", k=3)
    assert pinned[0].product_id == "P2" and pinned[0].strategy == "pinned"
    exclude = Rule("R3", "exclude", "category", "office", surface="email")
    engine = Engine(snap, rules=[exclude])
    assert ids(engine.recommend("nobody", k=3, surface="email")) == []
    assert ids(engine.recommend("nobody", k=3)) == plain[:3]  # only on e-mail
    why = engine.why_not("nobody", "P0", surface="email")
    assert why.removed_by == ["excluded by rule R3 (exclude category office on email)"]
    segment_only = Rule("R4", "exclude", "product", "P0", segment="B")
    engine = Engine(snap, rules=[segment_only])
    assert "P0" not in ids(engine.recommend("C2", k=5)) and "P0" in ids(
        engine.recommend("nobody", k=5)
    )


def test_category_cap_and_diversity_penalty() -> None:
    snap = replace(
        shop(), on_hand=np.array([5.0, 12.0, 30.0, 9.0, 9.0, 9.0]), active=np.ones(6, dtype=bool)
    )
    capped = Engine(snap, RankingWeights(diversity=0.0, max_per_category=1)).recommend(
        "nobody", k=6
    )
    categories = [snap.product_category[snap.product_index[p]] for p in ids(capped)]
    assert len(categories) == len(set(categories)) == 3
    diverse = Engine(snap, RankingWeights(diversity=5.0)).recommend("nobody", k=3)
    assert len({i.category_id for i in diverse}) == 3
    penalties = [a for i in diverse for a in i.adjustments if a.kind == "diversity"]
    assert not penalties  # three categories: nobody had to pay
    crowded = Engine(snap, RankingWeights(diversity=0.5)).recommend("nobody", k=5)
    paid = [a for i in crowded for a in i.adjustments if a.kind == "diversity"]
    assert paid and all(a.delta < 0 and "already in the list" in a.reason for a in paid)


def test_repurchase_window_offers_old_purchases_again() -> None:
    snap = shop()
    now = datetime(2030, 3, 1, tzinfo=UTC)  # C0 bought P2 on 2030-01-01: 59 days before
    never = Engine(snap, clock=lambda: now)
    assert "P2" not in ids(never.recommend("C0", k=5))
    window = Engine(snap, repurchase_window_days=30, clock=lambda: now)
    assert "P2" in ids(window.recommend("C0", k=5))
    longer = Engine(snap, repurchase_window_days=90, clock=lambda: now)
    assert "P2" not in ids(longer.recommend("C0", k=5))
    assert longer.why_not("C0", "P2").removed_by == [
        "already bought on 2030-01-01 (offered again after 90 days)"
    ]


def test_category_popular_fills_in_for_a_customer_without_vectors() -> None:
    snap = replace(shop(), customer_vectors=None, product_vectors=None, segment_popularity={})
    items = Engine(snap).recommend("C0", k=3)  # bought P2 (pens): P1 is the pen left
    assert items[0].product_id == "P1" and items[0].strategy == "category_popular"
    assert {i.strategy for i in items[1:]} == {"global_popular"}


def test_bought_together_and_cart_use_co_purchase() -> None:
    engine = Engine(shop())
    together = engine.bought_together("P1", k=3)
    # C1 and C2 bought P1 with P3, C2 with P0 as well.
    assert ids(together)[:2] == ["P3", "P0"] and together[0].strategy == "bought_together"
    cart = engine.cart(["P1", "P3"], k=2)
    assert ids(cart)[0] == "P0" and cart[0].strategy == "cart"
    assert not {"P1", "P3"} & set(ids(cart))
    with pytest.raises(KeyError):
        engine.cart(["P1", "nope"])


def test_personal_items_name_the_generators_that_proposed_them() -> None:
    items = Engine(shop()).recommend("C0", k=3)
    assert all(i.strategy == "personal" and "embedding" in i.sources for i in items)
    promoted = next(i for i in items if i.product_id == "P3")
    assert "promotion" in promoted.sources


def test_surface_weights_from_settings_refuse_unknown_names() -> None:
    weights = surface_weights({"email": {"stockout": 0.9}})
    assert weights["email"].stockout == 0.9 and weights["home"] == RankingWeights()
    with pytest.raises(ConfigurationError, match="unknown surface 'mail'"):
        surface_weights({"mail": {}})
    with pytest.raises(ConfigurationError, match="stockuot"):
        surface_weights({"email": {"stockuot": 1}})


def naive_greedy(
    adjusted: np.ndarray,
    codes: np.ndarray,
    per_category: np.ndarray,
    diversity: float,
    cap: int | None,
) -> list[tuple[int, float]]:
    """The re-rank by definition: after every pick, every item scored again."""
    used = np.zeros(len(adjusted), dtype=bool)
    picks = []
    while True:
        counts = np.where(codes >= 0, per_category[codes], 0)
        effective = adjusted - diversity * counts
        blocked = used.copy()
        if cap is not None:
            blocked |= (codes >= 0) & (counts >= cap)
        effective[blocked] = -np.inf
        best = int(np.argmax(effective))  # ties: the earlier position
        if not np.isfinite(effective[best]):
            return picks
        used[best] = True
        picks.append((best, float(diversity * counts[best])))
        if codes[best] >= 0:
            per_category[codes[best]] += 1


@pytest.mark.parametrize("seed", range(40))
def test_the_lazy_diversity_rerank_picks_what_rescoring_everything_picks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # Few distinct values and categories: many ties, within and across categories.
    adjusted = rng.integers(0, 6, n) / 4 + rng.choice([0.0, -0.3], n)
    codes = rng.integers(-1, 5, n)
    before = rng.integers(0, 3, 6)  # earlier tiers' picks per category ([-1]: none, stays 0)
    before[-1] = 0
    diversity = float(rng.choice([0.0, 0.25, 0.1]))
    cap = [None, 1, 2][seed % 3]
    expected_counts = before.copy()
    expected = naive_greedy(adjusted, codes, expected_counts, diversity, cap)
    counts = before.copy()
    assert list(_greedy(adjusted, codes, counts, diversity, cap)) == expected
    assert counts.tolist() == expected_counts.tolist()


def test_top_candidates_break_ties_to_the_lower_index_whatever_the_size() -> None:
    scores = np.array([1.0, 3.0, 2.0, 3.0, 2.0, 2.0, np.nan, 5.0])
    allowed = np.array([True] * 7 + [False])
    assert _top(scores, allowed, 3).tolist() == [1, 3, 2]
    assert _top(scores, allowed, 4).tolist() == [1, 3, 2, 4]
    # Large enough for the sampled bound: still every tie at the cut resolved the same way.
    rng = np.random.default_rng(0)
    big = rng.integers(0, 50, 20_000).astype(float)
    everything = np.ones(len(big), dtype=bool)
    order = np.lexsort((np.arange(len(big)), -big))
    for m in (1, 7, 200, 333):
        assert _top(big, everything, m).tolist() == order[:m].tolist()
    products = np.array([2, 5, 9])
    assert _best(products, np.array([1.0, 4.0, 4.0]), np.ones(10, bool), 2).tolist() == [5, 9]


def test_sparse_generators_match_their_catalogue_wide_scores() -> None:
    snap = shop()
    engine = Engine(snap)
    anchors = np.array([1, 2])
    dense = engine._copurchase(snap, anchors)
    products, weights = engine._copurchase_sparse(snap, anchors)
    assert len(products) and products.tolist() == np.flatnonzero(~np.isnan(dense)).tolist()
    assert weights.tolist() == dense[products].tolist()
    same = engine._category_products(snap, anchors)
    wide = engine._category_popularity(snap, anchors)
    assert len(same) and same.tolist() == np.flatnonzero(~np.isnan(wide)).tolist()


def test_the_rerank_breaks_rounding_ties_and_counts_a_pick_before_handing_it_out() -> None:
    # Two adjusted scores that differ round to the same effective score under the penalty:
    # the earlier position goes first, as when every item is scored again.
    adjusted, codes = np.array([2.0**-60, 2.0**-59]), np.array([0, 0])
    expected = naive_greedy(adjusted, codes, np.array([1, 0]), 0.25, None)
    assert list(_greedy(adjusted, codes, np.array([1, 0]), 0.25, None)) == expected
    assert expected[0][0] == 0
    counts = np.zeros(2, dtype=np.int64)
    next(_greedy(np.array([1.0]), np.array([0]), counts, 0.1, None))
    assert counts[0] == 1  # a caller stopping at its last pick leaves the count right
    assert _top(np.array([1.0, 2.0]), np.ones(2, dtype=bool), 0).tolist() == []


def test_new_weights_reach_the_cached_stock_and_promotion_reasons() -> None:
    engine = Engine(snapshot())
    before = {i.product_id: i.adjustments for i in engine.recommend("C0", k=4)}
    engine.set_weights({"home": RankingWeights(stockout=0.8, promotion=0.5)})
    after = {i.product_id: i.adjustments for i in engine.recommend("C0", k=4)}
    stock_before = [a.delta for a in before["P1"] if a.kind == "stock"]
    stock_after = [a.delta for a in after["P1"] if a.kind == "stock"]
    assert stock_before == [-0.075] and stock_after == [-0.2]
