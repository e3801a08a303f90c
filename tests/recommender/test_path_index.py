"""The serving snapshot's in-memory path index against the Cypher it stands in for, on a
generated shop in a real Neo4j: the same rows as `paths_customer.cypher` and
`paths_anchors.cypher` for every customer (bounds wide open, so neither side samples), and
every path served from it re-checked in the graph with a MATCH."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import neo4j
import pytest

from graph.cypher import load_cypher
from graph.settings import Settings
from graph.synthetic import ShopSpec, generate_shop
from recommender.explain import Explainer, verify_path
from recommender.snapshot import ServingSnapshot, load_snapshot
from tests.graph.test_ingest import ingest

pytestmark = pytest.mark.integration

SHOP = ShopSpec(customers=300, products=60, days=90, seed=5, lines_per_customer=10)
WIDE = {"co_buyers": 1_000_000, "per_pattern": 1_000_000}
#: Fields that may differ between two correct answers: which co-buyer or which of two
#: purchases made at the same moment a row names (the query takes the first it meets, the
#: index the most recent). What a path says and when the linking purchase happened must agree.
CHOICE = {
    "together": ("other_id", "item_ms", "link_ms"),
    "shared": ("product_id", "product_name", "count"),
}


def normal(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for row in rows:
        fields: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, list):
                drop = CHOICE.get(key, ())
                value = sorted(
                    json.dumps({k: v for k, v in x.items() if k not in drop}, sort_keys=True)
                    for x in value
                )
            fields[key] = value
        out[row["item_id"]] = fields
    return out


@pytest.fixture
def shop(graph: neo4j.Driver, settings: Settings, tmp_path: Path) -> ServingSnapshot:
    ingest(graph, settings, generate_shop(SHOP, tmp_path / "shop").folder)
    # Some customers opt out: they get no paths and appear in nobody's.
    graph.execute_query(
        "MATCH (c:Customer) WHERE c.customer_id ENDS WITH '7' SET c.personalization = false",
        database_=settings.neo4j.database,
    )
    return load_snapshot(graph, database=settings.neo4j.database)


def cypher(
    driver: neo4j.Driver, settings: Settings, name: str, **params: Any
) -> list[dict[str, Any]]:
    records = driver.execute_query(
        load_cypher("recommender", name), params, database_=settings.neo4j.database
    ).records
    return [dict(r) for r in records]


def test_the_index_gives_the_rows_of_the_cypher_queries(
    graph: neo4j.Driver, settings: Settings, shop: ServingSnapshot
) -> None:
    index = shop.paths
    assert index is not None
    rng = random.Random(3)
    customers = sorted(shop.customer_index)
    compared = found = 0
    for customer in customers:
        bought = [shop.product_ids[i] for i in shop.bought.get(customer, [])]
        items = rng.sample(shop.product_ids, 8) + bought[:2] + ["no-such-product"]
        mine = index.customer_rows(customer, items, history=1_000, **WIDE)
        theirs = cypher(
            graph,
            settings,
            "paths_customer",
            customer_id=customer,
            product_ids=items,
            history=1_000,
            **WIDE,
        )
        assert normal(mine) == normal(theirs), customer
        compared += len(theirs)
        found += sum(len(r["shared"]) + len(r["together"]) for r in theirs)
    assert compared > 2_000 and found > 5_000  # the comparison is not of empty rows
    for _ in range(60):
        anchors = rng.sample(shop.product_ids, rng.randint(1, 3))
        items = rng.sample(shop.product_ids, 8)
        mine = index.anchor_rows(anchors, items, **WIDE)
        theirs = cypher(
            graph, settings, "paths_anchors", anchor_ids=anchors, product_ids=items, **WIDE
        )
        assert normal(mine) == normal(theirs), anchors


def test_every_path_from_the_index_exists_and_shows_no_opted_out_customer(
    graph: neo4j.Driver, settings: Settings, shop: ServingSnapshot
) -> None:
    database = settings.neo4j.database
    explainer = Explainer(None, database, per_item=3)
    hidden = {c for c in shop.customer_index if c.endswith("7")}
    checked = 0
    for customer in sorted(shop.bought)[::5]:
        items = random.Random(customer).sample(shop.product_ids, 10)
        found = explainer.for_customer(customer, items, source=shop.paths)
        if customer in hidden:
            assert not any(found.values())
        anchors = [shop.product_ids[i] for i in shop.bought[customer][:2]]
        found_anchors = explainer.for_anchors(anchors, items, source=shop.paths)
        for paths in [*found.values(), *found_anchors.values()]:
            for path in paths:
                assert verify_path(graph, database, path), path
                assert not {n.id for n in path.nodes[1:] if n.label == "Customer"} & hidden
                checked += 1
    assert checked > 300
