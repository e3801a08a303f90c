"""Explanation paths from a real Neo4j, read with the bounded Cypher queries and from the
serving snapshot's in-memory index (every test runs with both): every path re-checked with a
MATCH, short, diverse, privacy-safe, and scored as a merchandiser would expect (recent and niche
first)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import neo4j
import pytest

from graph.settings import Settings
from recommender.explain import (
    ANOTHER_CUSTOMER,
    BOUGHT_RELATED,
    BOUGHT_SAME_BRAND,
    BOUGHT_SAME_CATEGORY,
    BOUGHT_SHARED_ATTRIBUTE,
    BOUGHT_TOGETHER,
    CARTED,
    MAX_HOPS,
    RELATED,
    RELATED_ENTITY,
    SAME_CATEGORY,
    SEGMENT_BOUGHT,
    SHARED_ATTRIBUTE,
    THIS_CUSTOMER,
    VIEWED,
    Explainer,
    PathExplanation,
    PathNode,
    PathRelationship,
    verify_path,
)
from recommender.snapshot import load_snapshot
from tests.graph.test_ingest import TINY_SHOP, ingest

pytestmark = pytest.mark.integration

NOW = datetime(2024, 7, 1, tzinfo=UTC)

# A small shop built for hand-checked paths. K1 bought PEN1 recently and PAP1 long ago;
# "Fountain Pens" (2 products) is niche, "Office Supplies" (9 products) is broad.
SHOP = {
    "customers.csv": """customer_id,segment,region,first_seen
K1,Consumer,West,2023-01-01
K2,Consumer,East,2023-01-01
K3,Consumer,East,2023-01-01
K4,Corporate,North,2023-01-01
K5,Consumer,South,2023-01-01
""",
    "categories.csv": """category_id,name,parent_id
root,All products,
office,Office Supplies,root
pens,Fountain Pens,office
paper,Paper,office
bags,Bags,root
""",
    "products.csv": """product_id,name,category_ids,brand,price,attributes
PEN1,Blue Ink Pen,pens|office,Inko,9.90,colour=blue
PEN2,Red Ink Pen,pens|office,Inko,9.90,colour=red
PAP1,Copy paper A4,paper|office,Navi,4.99,size=A4
PAP2,Copy paper A3,paper|office,Navi,7.50,size=A3
NOTE1,Notebook,office,Navi,3.00,
NOTE2,Sticky notes,office,Navi,2.00,
NOTE3,Stapler,office,Stapo,8.00,
NOTE4,Ruler,office,Stapo,1.00,
NOTE5,Eraser,office,Stapo,0.50,
BAG1,Laptop bag,bags,Carry,49.00,colour=black
BAG2,Tote bag,bags,Carry,19.00,colour=blue
CASE1,Pen case,bags,Carry,5.00,
""",
    "orders.csv": """order_id,customer_id,product_id,ts,quantity
O1,K1,PAP1,2023-01-10T10:00:00,1
O2,K1,BAG1,2024-05-01T10:00:00,1
O3,K1,PEN1,2024-06-01T10:00:00,1
O4,K2,PEN1,2024-05-20T10:00:00,1
O5,K2,BAG2,2024-05-21T10:00:00,1
O6,K4,PAP1,2024-03-01T10:00:00,1
O7,K4,NOTE1,2024-03-02T10:00:00,1
O8,K3,NOTE1,2024-04-01T10:00:00,1
O9,K5,PEN2,2024-06-01T10:00:00,1
""",
    "events.csv": """customer_id,product_id,type,ts
K1,PEN2,view,2024-06-10T10:00:00
K1,PEN2,view,2024-06-12T10:00:00
K1,CASE1,add_to_cart,2024-06-11T10:00:00
""",
    "relations.csv": """head_type,head_id,relation,tail_type,tail_id
product,CASE1,compatible_with,product,PEN1
product,PEN1,made_of,material,steel
product,PEN2,made_of,material,steel
product,NOTE3,made_of,material,steel
""",
}
ITEMS = ["PEN2", "PAP2", "NOTE1", "BAG2", "CASE1"]


@pytest.fixture
def shop(graph: neo4j.Driver, settings: Settings, tmp_path: Path) -> neo4j.Driver:
    folder = tmp_path / "shop"
    folder.mkdir()
    for name, text in SHOP.items():
        (folder / name).write_text(text, encoding="utf-8")
    report = ingest(graph, settings, folder)
    assert report.status == "succeeded", report
    return graph


class Explaining:
    """An `Explainer` whose paths come from the graph or from a serving snapshot's index; the
    snapshot is loaded at each call, as the API reloads it after a change."""

    def __init__(self, ex: Explainer, driver: neo4j.Driver, database: str, source: str) -> None:
        self.ex, self.driver, self.database, self.source = ex, driver, database, source

    def _source(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.source == "snapshot":
            kwargs["source"] = load_snapshot(self.driver, database=self.database).paths
        return kwargs

    def for_customer(
        self, customer: str, items: list[str], **kwargs: Any
    ) -> dict[str, list[PathExplanation]]:
        return self.ex.for_customer(customer, items, **self._source(kwargs))

    def for_anchors(
        self, anchors: list[str], items: list[str], **kwargs: Any
    ) -> dict[str, list[PathExplanation]]:
        return self.ex.for_anchors(anchors, items, **self._source(kwargs))


@pytest.fixture(params=["graph", "snapshot"])
def source(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def explainer(
    driver: neo4j.Driver, settings: Settings, source: str, per_item: int = 3
) -> Explaining:
    ex = Explainer(driver, settings.neo4j.database, per_item=per_item, now=lambda: NOW)
    return Explaining(ex, driver, settings.neo4j.database, source)


def opt_out(driver: neo4j.Driver, settings: Settings, customer_id: str) -> None:
    driver.execute_query(
        "MATCH (c:Customer {customer_id: $id}) SET c.personalization = false",
        id=customer_id,
        database_=settings.neo4j.database,
    )


def check_all(
    driver: neo4j.Driver, settings: Settings, found: dict[str, list[PathExplanation]], n: int
) -> list[PathExplanation]:
    """Every path exists (MATCH), is short, ends at its item, and each item has at most n."""
    paths = []
    for item, item_paths in found.items():
        assert len(item_paths) <= n
        scores = [p.score for p in item_paths]
        assert scores == sorted(scores, reverse=True)
        for path in item_paths:
            assert 1 <= path.hops <= MAX_HOPS
            assert path.nodes[-1] == PathNode("Product", item, path.nodes[-1].name)
            assert 0 <= path.score <= 1
            assert verify_path(driver, settings.neo4j.database, path), path
            paths.append(path)
    return paths


def by_kind(paths: list[PathExplanation]) -> dict[str, list[PathExplanation]]:
    out: dict[str, list[PathExplanation]] = {}
    for p in paths:
        out.setdefault(p.kind, []).append(p)
    return out


def test_customer_paths_exist_are_short_diverse_and_readable(
    shop: neo4j.Driver, settings: Settings, source: str
) -> None:
    found = explainer(shop, settings, source).for_customer("K1", [*ITEMS, "UNKNOWN"])
    assert set(found) == set(ITEMS) | {"UNKNOWN"} and found["UNKNOWN"] == []
    paths = check_all(shop, settings, found, 3)
    assert all(p.nodes[0] == PathNode("Customer", "K1", THIS_CUSTOMER) for p in paths)
    # Diversity: an item repeats a kind only when no other kind is left.
    everything = explainer(shop, settings, source, per_item=20).for_customer("K1", ITEMS)
    for item, item_paths in found.items():
        available = {p.kind for p in everything.get(item, [])}
        assert len({p.kind for p in item_paths}) == min(3, len(available))
    assert len({p.kind for p in found["PAP2"]}) == 2 and len(found["PAP2"]) == 3

    pen2 = by_kind(found["PEN2"])
    assert set(pen2) == {VIEWED, BOUGHT_SAME_CATEGORY, BOUGHT_SAME_BRAND}
    assert pen2[VIEWED][0].sentence == "Viewed Red Ink Pen 2 times, last on 2024-06-12"
    # The niche category is the one kept for the category kind.
    assert pen2[BOUGHT_SAME_CATEGORY][0].sentence == (
        "Bought Blue Ink Pen on 2024-06-01; same category Fountain Pens (2 products)"
    )
    assert pen2[BOUGHT_SAME_BRAND][0].sentence == (
        "Bought Blue Ink Pen on 2024-06-01; same brand Inko (2 products)"
    )
    category = pen2[BOUGHT_SAME_CATEGORY][0]
    assert [n.label for n in category.nodes] == ["Customer", "Product", "Category", "Product"]
    assert [(r.type, r.start, r.end) for r in category.relationships] == [
        ("PURCHASED", 0, 1),
        ("IN_CATEGORY", 1, 2),
        ("IN_CATEGORY", 3, 2),
    ]
    assert category.relationships[0].properties == {
        "count": 1,
        "last_ts": "2024-06-01T10:00:00+00:00",
    }

    bag2 = by_kind(found["BAG2"])
    assert BOUGHT_TOGETHER in bag2
    together = bag2[BOUGHT_TOGETHER][0]
    assert together.nodes[2] == PathNode("Customer", "K2", ANOTHER_CUSTOMER)
    assert together.sentence == (
        "Bought Blue Ink Pen on 2024-06-01; another of its 2 buyers also bought Tote bag"
    )
    case1 = by_kind(found["CASE1"])
    assert set(case1) >= {CARTED, BOUGHT_RELATED}
    assert case1[BOUGHT_RELATED][0].sentence == (
        "Bought Blue Ink Pen on 2024-06-01; Pen case is compatible with Blue Ink Pen"
    )
    assert case1[CARTED][0].sentence == "Added Pen case to the cart on 2024-06-11"
    note1 = by_kind(found["NOTE1"])
    assert BOUGHT_TOGETHER in note1  # K4 bought PAP1 and NOTE1 (opted in, for now)
    assert note1[BOUGHT_TOGETHER][0].nodes[2].id == "K4"


def test_every_kind_is_found_and_verified_with_many_paths_per_item(
    shop: neo4j.Driver, settings: Settings, source: str
) -> None:
    found = explainer(shop, settings, source, per_item=20).for_customer("K1", ITEMS)
    paths = check_all(shop, settings, found, 20)
    kinds = {p.kind for p in paths}
    assert kinds >= {
        VIEWED,
        CARTED,
        BOUGHT_RELATED,
        BOUGHT_SAME_CATEGORY,
        BOUGHT_SAME_BRAND,
        BOUGHT_SHARED_ATTRIBUTE,
        BOUGHT_TOGETHER,
        SEGMENT_BOUGHT,
        "bought_related_entity",
    }
    segment = by_kind(found["NOTE1"])[SEGMENT_BOUGHT][0]
    assert segment.nodes[2] == PathNode("Customer", "K3", ANOTHER_CUSTOMER)
    assert segment.sentence == (
        "Another customer in segment Consumer (4 customers) bought Notebook on 2024-04-01"
    )
    entity = by_kind(found["PEN2"])["bought_related_entity"][0]
    assert entity.sentence == "Bought Blue Ink Pen on 2024-06-01; both made of steel (3 products)"
    attribute = by_kind(found["BAG2"])[BOUGHT_SHARED_ATTRIBUTE][0]
    assert attribute.sentence == (
        "Bought Blue Ink Pen on 2024-06-01; same colour: blue (2 products)"
    )


def test_niche_category_and_recent_purchase_score_higher(
    shop: neo4j.Driver, settings: Settings, source: str
) -> None:
    found = explainer(shop, settings, source, per_item=20).for_customer("K1", ["PEN2", "PAP2"])
    categories = {p.nodes[2].id: p for p in found["PEN2"] if p.kind == BOUGHT_SAME_CATEGORY}
    # Same purchase (PEN1 on 2024-06-01) reaches both: 2 products beat 9.
    assert set(categories) == {"pens", "office"}
    assert categories["pens"].score > categories["office"].score
    assert categories["office"].sentence.endswith("same category Office Supplies (9 products)")
    # Same degree (2 products each): the recent purchase (PEN1) beats the old one (PAP1).
    recent = categories["pens"]
    old = next(
        p for p in found["PAP2"] if p.kind == BOUGHT_SAME_CATEGORY and p.nodes[2].id == "paper"
    )
    assert old.nodes[1].id == "PAP1" and old.sentence.startswith(
        "Bought Copy paper A4 on 2023-01-10"
    )
    assert recent.score > old.score


def test_agreement_with_the_model_reorders_paths(
    shop: neo4j.Driver, settings: Settings, source: str
) -> None:
    ex = explainer(shop, settings, source, per_item=20)
    plain = ex.for_customer("K1", ["BAG2"])["BAG2"]
    # The model disagrees with BAG1 -> BAG2 and agrees with PEN1 -> BAG2.
    scores = {"BAG1": 0.0, "PEN1": 1.0}
    tilted = ex.for_customer("K1", ["BAG2"], agreement=lambda a, b: scores.get(a, 0.5))["BAG2"]

    def score_of(paths: list[PathExplanation], kind: str) -> float:
        return next(p.score for p in paths if p.kind == kind)

    assert score_of(tilted, BOUGHT_TOGETHER) > score_of(plain, BOUGHT_TOGETHER)
    assert score_of(tilted, BOUGHT_SAME_CATEGORY) < score_of(plain, BOUGHT_SAME_CATEGORY)


def test_an_opted_out_co_buyer_never_appears(
    shop: neo4j.Driver, settings: Settings, source: str
) -> None:
    ex = explainer(shop, settings, source, per_item=20)
    before = ex.for_customer("K1", ["NOTE1"])
    assert any(n.id == "K4" for p in before["NOTE1"] for n in p.nodes)  # the case is real
    anchors_before = ex.for_anchors(["PAP1"], ["NOTE1"])
    assert any(n.id == "K4" for p in anchors_before["NOTE1"] for n in p.nodes)

    opt_out(shop, settings, "K4")
    everyone = ["K1", "K2", "K3", "K4", "K5"]
    products = [*ITEMS, "PEN1", "PAP1", "BAG1", "NOTE2"]
    seen = []
    for customer in everyone:
        seen += check_all(shop, settings, ex.for_customer(customer, products), 20)
    seen += check_all(shop, settings, ex.for_anchors(["PAP1", "PEN1"], products), 20)
    assert seen
    # Inside a path: every customer but the one it starts from.
    customers_in_paths = {n.id for p in seen for n in p.nodes[1:] if n.label == "Customer"}
    assert "K4" not in customers_in_paths
    assert {"K2", "K3"} <= customers_in_paths  # opted-in co-buyers still explain
    flags = shop.execute_query(
        "MATCH (c:Customer) WHERE c.customer_id IN $ids RETURN collect(c.personalization) AS f",
        ids=sorted(customers_in_paths),
        database_=settings.neo4j.database,
    ).records[0]["f"]
    assert flags and all(flag is True for flag in flags)
    for p in seen:
        for i, node in enumerate(p.nodes):
            if node.label == "Customer" and i > 0:
                assert node.name == ANOTHER_CUSTOMER


def test_an_opted_out_customer_gets_no_paths(
    shop: neo4j.Driver, settings: Settings, source: str
) -> None:
    ex = explainer(shop, settings, source)
    assert any(ex.for_customer("K5", ["PEN1", "PEN2", "BAG2"]).values())  # paths exist
    opt_out(shop, settings, "K5")
    assert ex.for_customer("K5", ["PEN1", "PEN2", "BAG2"]) == {"PEN1": [], "PEN2": [], "BAG2": []}
    assert ex.for_customer("nobody", ["PEN1"]) == {"PEN1": []}


def test_anchor_paths(shop: neo4j.Driver, settings: Settings, source: str) -> None:
    found = explainer(shop, settings, source).for_anchors(
        ["PEN1"], ["PEN2", "BAG2", "CASE1", "PEN1"]
    )
    paths = check_all(shop, settings, found, 3)
    assert all(p.nodes[0].id == "PEN1" for p in paths)
    assert found["PEN1"] == []  # an anchor does not explain itself
    pen2 = by_kind(found["PEN2"])
    assert set(pen2) == {SAME_CATEGORY, "same_brand", RELATED_ENTITY}
    assert pen2[SAME_CATEGORY][0].sentence == (
        "Blue Ink Pen and Red Ink Pen: same category Fountain Pens (2 products)"
    )
    bag2 = by_kind(found["BAG2"])
    assert set(bag2) == {BOUGHT_TOGETHER, SHARED_ATTRIBUTE}
    assert bag2[BOUGHT_TOGETHER][0].nodes[1] == PathNode("Customer", "K2", ANOTHER_CUSTOMER)
    assert bag2[BOUGHT_TOGETHER][0].sentence == (
        "Another of the 2 buyers of Blue Ink Pen also bought Tote bag (last on 2024-05-20)"
    )
    case1 = by_kind(found["CASE1"])
    assert case1[RELATED][0].sentence == "Pen case is compatible with Blue Ink Pen"
    assert [(r.type, r.start, r.end) for r in case1[RELATED][0].relationships] == [
        ("RELATED", 1, 0)
    ]


def test_verify_path_rejects_paths_not_in_the_graph(
    shop: neo4j.Driver, settings: Settings, source: str
) -> None:
    db = settings.neo4j.database
    path = explainer(shop, settings, source).for_customer("K1", ["PEN2"])["PEN2"][0]
    assert verify_path(shop, db, path)
    me = PathNode("Customer", "K1", THIS_CUSTOMER)
    pen2 = PathNode("Product", "PEN2", "Red Ink Pen")
    never = PathExplanation(
        "bought_before", (me, pen2), (PathRelationship("PURCHASED", 0, 1, {}),), 0.5, "x"
    )
    assert not verify_path(shop, db, never)  # K1 viewed PEN2, never bought it
    wrong_way = PathExplanation(
        VIEWED, (me, pen2), (PathRelationship("VIEWED", 1, 0, {}),), 0.5, "x"
    )
    assert not verify_path(shop, db, wrong_way)
    wrong_date = PathExplanation(
        VIEWED,
        (me, pen2),
        (PathRelationship("VIEWED", 0, 1, {"last_ts": "2024-06-11T10:00:00+00:00"}),),
        0.5,
        "x",
    )
    assert not verify_path(shop, db, wrong_date)
    right_date = PathExplanation(
        VIEWED,
        (me, pen2),
        (PathRelationship("VIEWED", 0, 1, {"last_ts": "2024-06-12T10:00:00+00:00", "count": 2}),),
        0.5,
        "x",
    )
    assert verify_path(shop, db, right_date)


def test_tiny_shop_paths_all_verify(graph: neo4j.Driver, settings: Settings, source: str) -> None:
    ingest(graph, settings, TINY_SHOP)
    ex = explainer(graph, settings, source)
    found = ex.for_customer("C1", ["P2", "P4", "P5"])
    check_all(graph, settings, found, 3)
    assert {p.kind for p in found["P2"]} == {BOUGHT_SAME_CATEGORY, BOUGHT_SAME_BRAND}
    assert next(p.kind for p in found["P4"]) == VIEWED
    assert found["P2"][0].sentence.startswith("Bought Copy paper A4 2 times, last on 2023-04-01")
    check_all(graph, settings, ex.for_anchors(["P5"], ["P4", "P1"]), 3)
