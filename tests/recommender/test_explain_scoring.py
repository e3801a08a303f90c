"""Path scoring, diversity, sentences and path building, without a database."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recommender.explain import (
    BOUGHT_SAME_BRAND,
    BOUGHT_SAME_CATEGORY,
    BOUGHT_TOGETHER,
    SEGMENT_BOUGHT,
    VIEWED,
    Explainer,
    PathExplanation,
    PathLimits,
    PathNode,
    PathRelationship,
    PathScoring,
    _anchor_candidates,
    _customer_candidates,
    _verify_query,
    interaction_sentence,
    path_score,
    recency,
    select_diverse,
    shared_sentence,
    specificity,
    together_sentence,
)

NOW = datetime(2024, 7, 1, tzinfo=UTC)
MS = int(datetime(2024, 6, 1, 10, tzinfo=UTC).timestamp() * 1000)


def test_recency_halves_every_half_life() -> None:
    scoring = PathScoring(half_life_days=30)
    assert recency(NOW, NOW, scoring) == pytest.approx(1.0)
    assert recency(NOW - timedelta(days=30), NOW, scoring) == pytest.approx(0.5)
    assert recency(NOW - timedelta(days=90), NOW, scoring) == pytest.approx(0.125)
    assert recency(NOW + timedelta(days=3), NOW, scoring) == pytest.approx(1.0)
    assert recency(None, NOW, scoring) == scoring.undated_recency


def test_specificity_falls_with_the_degree() -> None:
    assert specificity(None) == specificity(1) == 1.0
    assert specificity(14) == pytest.approx(1 / (1 + math.log(14)))
    assert specificity(2) > specificity(14) > specificity(5_000) > 0


def test_path_score_is_the_weighted_mean() -> None:
    scoring = PathScoring(recency_weight=1, specificity_weight=2, agreement_weight=1)
    assert path_score(1.0, 0.5, 0.0, scoring) == pytest.approx((1 + 1 + 0) / 4)
    # No agreement: neutral; out-of-range or NaN agreement is clipped or neutral.
    assert path_score(1.0, 0.5, None, scoring) == pytest.approx((1 + 1 + 0.5) / 4)
    assert path_score(1.0, 0.5, 7.0, scoring) == pytest.approx((1 + 1 + 1) / 4)
    assert path_score(1.0, 0.5, float("nan"), scoring) == pytest.approx((1 + 1 + 0.5) / 4)
    # A recent interaction beats an old one; a niche shared node beats a broad one.
    fresh = recency(NOW - timedelta(days=2), NOW, scoring)
    stale = recency(NOW - timedelta(days=400), NOW, scoring)
    assert path_score(fresh, specificity(10), None, scoring) > path_score(
        stale, specificity(10), None, scoring
    )
    assert path_score(fresh, specificity(3), None, scoring) > path_score(
        fresh, specificity(3_000), None, scoring
    )


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("half_life_days", {"half_life_days": 0}),
        ("weights", {"recency_weight": -1}),
        ("weights", {"recency_weight": 0, "specificity_weight": 0, "agreement_weight": 0}),
        ("undated_recency", {"undated_recency": 2}),
    ],
)
def test_bad_scoring_names_the_field(field: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=field):
        PathScoring(**kwargs)


def test_bad_limits_and_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="co_buyers"):
        PathLimits(co_buyers=0)
    with pytest.raises(ValueError, match="per_item"):
        Explainer(None, "neo4j", per_item=0)  # type: ignore[arg-type]
    ex = Explainer(None, "neo4j")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="customer_id"):
        ex.for_customer("", ["P1"])
    with pytest.raises(ValueError, match=r"product_ids\[1\]"):
        ex.for_customer("C1", ["P1", ""])
    with pytest.raises(ValueError, match="product_ids: must be a list"):
        ex.for_customer("C1", "P1")
    with pytest.raises(ValueError, match="anchor_product_ids"):
        ex.for_anchors([None], ["P1"])  # type: ignore[list-item]
    assert ex.for_customer("C1", []) == {}  # nothing asked, no query


@dataclass
class Ranked:
    kind: str
    score: float
    name: str


def test_select_diverse_takes_the_best_of_each_kind_first() -> None:
    paths = [
        Ranked("a", 0.9, "a1"),
        Ranked("a", 0.8, "a2"),
        Ranked("a", 0.7, "a3"),
        Ranked("b", 0.3, "b1"),
        Ranked("c", 0.2, "c1"),
        Ranked("c", 0.1, "c2"),
    ]
    assert [p.name for p in select_diverse(paths, 3)] == ["a1", "b1", "c1"]
    assert [p.name for p in select_diverse(paths, 4)] == ["a1", "a2", "b1", "c1"]
    assert [p.name for p in select_diverse(paths, 2)] == ["a1", "b1"]
    assert [p.name for p in select_diverse(paths[:3], 5)] == ["a1", "a2", "a3"]
    assert select_diverse([], 3) == []


def test_sentences_name_the_display_names() -> None:
    when = datetime(2023, 4, 2, 9, tzinfo=UTC)
    assert shared_sentence("IN_CATEGORY", "Blue Ink Pen", when, "Fountain Pens", 14) == (
        "Bought Blue Ink Pen on 2023-04-02; same category Fountain Pens (14 products)"
    )
    assert shared_sentence("HAS_BRAND", "Pen", when, "Inko", 1, count=3) == (
        "Bought Pen 3 times, last on 2023-04-02; same brand Inko (1 product)"
    )
    assert shared_sentence("RELATED", "Pen", None, "steel", 2_500, "made_of", item="Ink") == (
        "Pen and Ink: both made of steel (2,500 products)"
    )
    assert interaction_sentence(VIEWED, "Pen", when, 1) == "Viewed Pen on 2023-04-02"
    assert interaction_sentence("rated", "Pen", when, 1, 4.5) == "Rated Pen 4.5 on 2023-04-02"
    assert together_sentence("Pen", "Ink", None, None, bought=False) == (
        "Another buyer of Pen also bought Ink (last on an unknown date)"
    )
    assert together_sentence("Pen", "Ink", when, 12, bought=True) == (
        "Bought Pen on 2023-04-02; another of its 12 buyers also bought Ink"
    )


def customer_row() -> dict[str, Any]:
    def product(pid: str, **extra: Any) -> dict[str, Any]:
        return {"product_id": pid, "product_name": f"Name {pid}", "count": 1, **extra}

    return {
        "item_id": "X",
        "item_name": "Item X",
        "direct": [{"type": "VIEWED", "count": 2, "last_ms": MS, "value": None}],
        "related": [],
        "shared": [
            {
                **product("A", last_ms=MS),
                "via": "IN_CATEGORY",
                "relation": None,
                "labels": ["Category"],
                "shared_id": "niche",
                "shared_name": "Niche",
                "key": None,
                "value": None,
                "degree": 3,
            },
            {
                **product("B", last_ms=MS - 300 * 86_400_000),
                "via": "HAS_BRAND",
                "relation": None,
                "labels": ["Brand"],
                "shared_id": "Acme",
                "shared_name": "Acme",
                "key": None,
                "value": None,
                "degree": 3,
            },
        ],
        "together": [
            {
                **product("A", last_ms=MS),
                "other_id": "C9",
                "link_ms": MS,
                "item_ms": MS,
                "degree": 40,
            }
        ],
        "in_segment": [
            {
                "segment_id": "Consumer",
                "segment_name": "Consumer",
                "other_id": "C8",
                "item_ms": MS,
                "degree": 20_000,
            }
        ],
    }


def test_candidates_build_paths_of_the_documented_shape() -> None:
    candidates = _customer_candidates(customer_row())
    kinds = [c.kind for c in candidates]
    assert kinds == [
        VIEWED,
        BOUGHT_SAME_CATEGORY,
        BOUGHT_SAME_BRAND,
        BOUGHT_TOGETHER,
        SEGMENT_BOUGHT,
    ]
    me = PathNode("Customer", "C1", "this customer")
    item = PathNode("Product", "X", "Item X")
    nodes, rels, text = candidates[3].build(me, item)
    assert [n.label for n in nodes] == ["Customer", "Product", "Customer", "Product"]
    assert nodes[2].name == "another customer" and nodes[2].id == "C9"
    assert [(r.type, r.start, r.end) for r in rels] == [
        ("PURCHASED", 0, 1),
        ("PURCHASED", 2, 1),
        ("PURCHASED", 2, 3),
    ]
    assert rels[0].properties == {"count": 1, "last_ts": "2024-06-01T10:00:00+00:00"}
    assert text.endswith("also bought Item X")
    nodes, rels, text = candidates[4].build(me, item)
    assert [r.type for r in rels] == ["IN_SEGMENT", "IN_SEGMENT", "PURCHASED"]
    assert text.startswith("Another customer in segment Consumer (20,000 customers)")


def test_choose_ranks_recent_niche_and_agreed_paths_first() -> None:
    ex = Explainer(None, "neo4j", per_item=5, now=lambda: NOW)  # type: ignore[arg-type]
    me = PathNode("Customer", "C1", "this customer")
    item = PathNode("Product", "X", "Item X")
    paths = ex._choose(me, item, _customer_candidates(customer_row()), NOW, None)
    scores = {p.kind: p.score for p in paths}
    # Same degree (3): the purchase a month ago beats the one 300 days earlier.
    assert scores[BOUGHT_SAME_CATEGORY] > scores[BOUGHT_SAME_BRAND]
    # Same time: a product 40 customers bought beats a segment of 20,000.
    assert scores[BOUGHT_TOGETHER] > scores[SEGMENT_BOUGHT]
    assert [p.score for p in paths] == sorted(scores.values(), reverse=True)
    # The model's agreement moves a path: B strongly agreed, A not at all.
    tilted = ex._choose(
        me, item, _customer_candidates(customer_row()), NOW, lambda a, b: 1.0 if a == "B" else 0.0
    )
    tilted_scores = {p.kind: p.score for p in tilted}
    assert tilted_scores[BOUGHT_SAME_BRAND] > scores[BOUGHT_SAME_BRAND]
    assert tilted_scores[BOUGHT_SAME_CATEGORY] < scores[BOUGHT_SAME_CATEGORY]
    assert tilted_scores[VIEWED] == scores[VIEWED]  # no linking product: neutral


def test_anchor_candidates_date_a_co_purchase_by_the_earlier_purchase() -> None:
    row = {
        "item_id": "X",
        "item_name": "Item X",
        "related": [],
        "shared": [],
        "together": [
            {
                "product_id": "A",
                "product_name": "Anchor",
                "other_id": "C9",
                "link_ms": MS,
                "item_ms": MS + 86_400_000,
                "degree": 2,
            }
        ],
    }
    (candidate,) = _anchor_candidates(row)
    assert candidate.when == datetime(2024, 6, 1, 10, tzinfo=UTC)
    item = PathNode("Product", "X", "Item X")
    nodes, rels, text = candidate.build(item, item)  # an anchor path's origin is its anchor
    assert nodes[0].id == "A" and nodes[-1] == item
    assert [(r.start, r.end) for r in rels] == [(1, 0), (1, 2)]
    assert text == "Another of the 2 buyers of Anchor also bought Item X (last on 2024-06-01)"


def path(
    nodes: list[tuple[str, str]], rels: list[tuple[str, int, int, dict[str, Any]]]
) -> PathExplanation:
    return PathExplanation(
        "x",
        tuple(PathNode(label, pid, pid) for label, pid in nodes),
        tuple(PathRelationship(t, s, e, p) for t, s, e, p in rels),
        0.5,
        "x",
    )


def test_verify_query_uses_only_allow_listed_names_and_parameters() -> None:
    query, params = _verify_query(
        path(
            [
                ("Customer", "C1"),
                ("Product", "P1"),
                ("Entity", "material:steel"),
                ("Product", "P2"),
            ],
            [
                ("PURCHASED", 0, 1, {"last_ts": "2024-06-01T10:00:00+00:00", "count": 2}),
                ("RELATED", 1, 2, {"relation": "made_of"}),
                ("RELATED", 3, 2, {"relation": "made_of"}),
            ],
        )
    )
    assert "(n0:Customer {customer_id: $ids[0]})-[r0:PURCHASED]->(n1:Product" in query
    assert "<-[r2:RELATED]-(n3:Product {product_id: $ids[3]})" in query
    assert "r0.last_ts = datetime($properties[0].last_ts)" in query
    assert "r1.relation = $properties[1].relation" in query
    assert "C1" not in query and "made_of" not in query
    assert params["ids"] == ["C1", "P1", "material:steel", "P2"]
    with pytest.raises(ValueError, match=r"nodes\[1\].label"):
        _verify_query(
            path([("Customer", "C1"), ("Order) DETACH DELETE (x", "O1")], [("PLACED", 0, 1, {})])
        )
    with pytest.raises(ValueError, match=r"relationships\[0\].type"):
        _verify_query(path([("Customer", "C1"), ("Product", "P1")], [("PLACED", 0, 1, {})]))
    with pytest.raises(ValueError, match=r"relationships\[0\]: must join nodes 0 and 1"):
        _verify_query(path([("Customer", "C1"), ("Product", "P1")], [("PURCHASED", 0, 2, {})]))
    five = [("Product", f"P{i}") for i in range(6)]
    with pytest.raises(ValueError, match="1 to 4 relationships"):
        _verify_query(path(five, [("RELATED", i, i + 1, {}) for i in range(5)]))


def test_to_dict_is_plain_json() -> None:
    p = path([("Customer", "C1"), ("Product", "P1")], [("VIEWED", 0, 1, {"count": 1})])
    assert p.to_dict() == {
        "kind": "x",
        "nodes": [
            {"label": "Customer", "id": "C1", "name": "C1"},
            {"label": "Product", "id": "P1", "name": "P1"},
        ],
        "relationships": [{"type": "VIEWED", "start": 0, "end": 1, "properties": {"count": 1}}],
        "score": 0.5,
        "sentence": "x",
    }
    assert p.hops == 1
