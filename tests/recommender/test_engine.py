"""The engine core on a hand-built snapshot: strategies, filters, adjustments with reasons."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from recommender.engine import (
    GLOBAL_POPULAR,
    PERSONAL,
    SEGMENT_POPULAR,
    SIMILAR,
    Engine,
    RankingWeights,
    adjustments_for,
)
from recommender.snapshot import Promotion, ServingSnapshot

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
