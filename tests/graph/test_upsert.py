"""API upserts against the real Neo4j: catalogue, stock and promotion rows change the graph like
a load would; a bad row refuses the whole request with index, field and reason, and nothing is
written; repeats change nothing; each upsert is an IngestRun."""

from __future__ import annotations

import json
from typing import Any

import neo4j
import pytest

from graph.errors import ValidationFailed
from graph.ingest.service import GraphWriter, code_version
from graph.ingest.upsert import (
    EXAMPLES,
    UpsertKind,
    UpsertRejected,
    upsert,
    upsert_many,
)
from graph.settings import Settings
from tests.graph.test_ingest import TINY_SHOP, counts, ingest, snapshot

pytestmark = pytest.mark.integration


@pytest.fixture
def shop(graph: neo4j.Driver, settings: Settings) -> neo4j.Driver:
    """The tiny shop, loaded."""
    ingest(graph, settings, TINY_SHOP)
    return graph


def one(driver: neo4j.Driver, query: str, **params: Any) -> Any:
    records = driver.execute_query(query, params).records
    assert len(records) == 1, records
    return records[0]


def runs(driver: neo4j.Driver) -> list[dict[str, Any]]:
    records = driver.execute_query("MATCH (r:IngestRun) RETURN properties(r) AS r").records
    return sorted((dict(r["r"]) for r in records), key=lambda r: str(r["run_id"]))


def full_state(driver: neo4j.Driver) -> tuple[Any, ...]:
    """Every node and relationship with its properties, lineage included."""
    return (*snapshot(driver), repr(runs(driver)))


def test_product_upsert_changes_name_and_price_and_adds_a_product(
    shop: neo4j.Driver, settings: Settings
) -> None:
    result = upsert(
        shop,
        database=settings.neo4j.database,
        kind=UpsertKind.products,
        rows=[
            {
                "product_id": "P1",
                "name": "Copy paper A4, 500",
                "category_ids": "paper",
                "price": 5.49,
            },
            {
                "product_id": "P9",
                "name": "Lever arch file",
                "category_ids": ["binders"],
                "brand": "Leitz",
                "price": "3.10",
                "attributes": {"colour": "black"},
                "created_at": "2024-09-01",
            },
        ],
    )
    assert (result.kind, result.rows_written) == ("products", 2)
    p1 = one(shop, "MATCH (p:Product {product_id: 'P1'}) RETURN p")["p"]
    assert p1["name"] == "Copy paper A4, 500" and p1["price"] == 5.49
    assert p1["names"] == ["Copy paper A4", "Copy paper A4, 500"]
    # Fields the row leaves out keep their stored values and links (as in a load).
    kept = one(
        shop,
        "MATCH (p:Product {product_id: 'P1'}) RETURN COLLECT { MATCH (p)-[:HAS_ATTRIBUTE]->(a) "
        "RETURN a.attribute_id ORDER BY a.attribute_id } AS attributes, "
        "COLLECT { MATCH (p)-[:HAS_BRAND]->(b) RETURN b.brand_id } AS brands",
    )
    assert kept["attributes"] == ["size=A4", "weight=80g"] and kept["brands"] == ["Navigator"]
    new = one(
        shop,
        "MATCH (p:Product {product_id: 'P9'})-[:IN_CATEGORY]->(c:Category), "
        "(p)-[:HAS_BRAND]->(b:Brand), (p)-[:HAS_ATTRIBUTE]->(a:Attribute) "
        "RETURN p.price AS price, p.active AS active, c.category_id AS c, b.brand_id AS b, "
        "a.attribute_id AS a, toString(p.created_at) AS created",
    )
    assert (new["price"], new["active"], new["c"], new["b"], new["a"]) == (
        3.10,
        True,
        "binders",
        "Leitz",
        "colour=black",
    )
    assert new["created"].startswith("2024-09-01T00:00")
    assert counts(shop)["Product"] == 6


def test_stock_upsert_updates_on_hand_and_adds_a_location(
    shop: neo4j.Driver, settings: Settings
) -> None:
    result = upsert(
        shop,
        database=settings.neo4j.database,
        kind=UpsertKind.stock,
        rows=[
            {"product_id": "P1", "location_id": "W1", "on_hand": 80, "updated_at": "2024-09-02"},
            {"product_id": "P2", "location_id": "S9", "on_hand": "12", "lead_time_days": 3},
        ],
    )
    assert result.rows_written == 2
    stock = shop.execute_query(
        "MATCH (p:Product)-[s:STOCKED_AT]->(l:Location) WHERE p.product_id IN ['P1', 'P2'] "
        "RETURN p.product_id AS p, l.location_id AS l, s.on_hand AS on_hand, "
        "s.lead_time_days AS lead ORDER BY p, l"
    ).records
    assert [(r["p"], r["l"], r["on_hand"], r["lead"]) for r in stock] == [
        ("P1", "W1", 80, 7),  # lead time kept: the row leaves it out
        ("P2", "S9", 12, 3),
        ("P2", "W1", 0, 14),
    ]


def test_stock_for_a_product_of_the_same_request_is_accepted(
    shop: neo4j.Driver, settings: Settings
) -> None:
    stock_row = {"product_id": "P10", "location_id": "W1", "on_hand": 5}
    with pytest.raises(UpsertRejected, match=r"stock\[0\]\.product_id .*unknown product 'P10'"):
        upsert(shop, database=settings.neo4j.database, kind=UpsertKind.stock, rows=[stock_row])
    result = upsert_many(
        shop,
        database=settings.neo4j.database,
        rows_by_kind={
            "stock": [stock_row],
            "products": [{"product_id": "P10", "name": "Stapler", "category_ids": "office"}],
        },
    )
    assert result.kind == "products+stock"
    assert result.rows_by_kind == {"products": 1, "stock": 1}
    on_hand = one(
        shop,
        "MATCH (:Product {product_id: 'P10'})-[s:STOCKED_AT]->(:Location {location_id: 'W1'}) "
        "RETURN s.on_hand AS n",
    )["n"]
    assert on_hand == 5


def test_promotion_upsert_adds_a_promotion_that_applies_to_its_target(
    shop: neo4j.Driver, settings: Settings
) -> None:
    upsert(
        shop,
        database=settings.neo4j.database,
        kind=UpsertKind.promotions,
        rows=[
            {
                "promotion_id": "PR9",
                "name": "Paper month",
                "discount_pct": 12.5,
                "starts_at": "2024-09-01T00:00:00Z",
                "ends_at": "2024-09-30T23:59:59+02:00",
                "target_type": "product",
                "target_id": "P1",
                "channel": "web",
            }
        ],
    )
    promotion = one(
        shop,
        "MATCH (pr:Promotion {promotion_id: 'PR9'})-[:APPLIES_TO]->(t) "
        "RETURN labels(t) AS labels, t.product_id AS target, pr.discount_pct AS pct, "
        "toString(pr.starts_at) AS starts, toString(pr.ends_at) AS ends, pr.channel AS channel",
    )
    assert promotion["labels"] == ["Product"] and promotion["target"] == "P1"
    assert promotion["pct"] == 12.5 and promotion["channel"] == "web"
    assert promotion["starts"].startswith("2024-09-01T00:00:00")
    assert promotion["ends"].startswith("2024-09-30T21:59:59")  # stored in UTC
    assert counts(shop)["APPLIES_TO"] == 4


GOOD_STOCK = {"product_id": "P1", "location_id": "W1", "on_hand": 1}
GOOD_PRODUCT = {"product_id": "P1", "name": "Renamed", "category_ids": "paper"}
GOOD_PROMOTION = {
    "promotion_id": "PR9",
    "name": "Paper month",
    "discount_pct": 10,
    "starts_at": "2024-09-01",
    "ends_at": "2024-09-30",
    "target_type": "category",
    "target_id": "paper",
}


@pytest.mark.parametrize(
    ("kind", "bad_row", "field", "reason"),
    [
        (UpsertKind.stock, {**GOOD_STOCK, "on_hand": -3}, "on_hand", "greater than or equal to 0"),
        (
            UpsertKind.stock,
            {**GOOD_STOCK, "product_id": "P99"},
            "product_id",
            "unknown product 'P99'",
        ),
        (UpsertKind.stock, {**GOOD_STOCK, "on_hand": 2.5}, "on_hand", "valid integer"),
        (
            UpsertKind.promotions,
            {**GOOD_PROMOTION, "starts_at": "next monday"},
            "starts_at",
            "valid datetime",
        ),
        (
            UpsertKind.promotions,
            {**GOOD_PROMOTION, "target_type": "shelf"},
            "target_type",
            "'product', 'category' or 'brand'",
        ),
        (
            UpsertKind.promotions,
            {**GOOD_PROMOTION, "target_type": "product", "target_id": "P77"},
            "target_id",
            "unknown product 'P77'",
        ),
        (
            UpsertKind.promotions,
            {**GOOD_PROMOTION, "ends_at": "2024-08-01"},
            "ends_at",
            "ends before it starts",
        ),
        (
            UpsertKind.promotions,
            {**GOOD_PROMOTION, "discount_pct": 150},
            "discount_pct",
            "less than or equal to 100",
        ),
        (UpsertKind.products, {**GOOD_PRODUCT, "prise": 3}, "prise", "unknown field 'prise'"),
        (
            UpsertKind.products,
            {**GOOD_PRODUCT, "category_ids": "nowhere"},
            "category_ids",
            "unknown category 'nowhere'",
        ),
        (
            UpsertKind.products,
            {"product_id": "P1", "category_ids": "paper"},
            "name",
            "required value is missing",
        ),
        (UpsertKind.products, {**GOOD_PRODUCT, "name": ""}, "name", "required value is missing"),
        (
            UpsertKind.products,
            {**GOOD_PRODUCT, "attributes": "size"},
            "attributes",
            "not key=value",
        ),
        (UpsertKind.stock, {**GOOD_STOCK, "email": "a@example.com"}, "email", "personal data"),
        (
            UpsertKind.categories,
            {"category_id": "x", "name": "X", "parent_id": "nowhere"},
            "parent_id",
            "unknown category 'nowhere'",
        ),
    ],
)
def test_a_bad_row_refuses_the_whole_request_and_writes_nothing(
    shop: neo4j.Driver,
    settings: Settings,
    kind: UpsertKind,
    bad_row: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    good_row = {
        UpsertKind.stock: {**GOOD_STOCK, "on_hand": 999},
        UpsertKind.products: {**GOOD_PRODUCT, "name": "Should not be written"},
        UpsertKind.promotions: {**GOOD_PROMOTION, "promotion_id": "PR8"},
        UpsertKind.categories: {"category_id": "fresh", "name": "Fresh"},
    }[kind]
    before = full_state(shop)
    with pytest.raises(UpsertRejected) as raised:
        upsert(shop, database=settings.neo4j.database, kind=kind, rows=[good_row, bad_row])
    error = raised.value
    assert isinstance(error, ValidationFailed)
    matching = [e for e in error.errors if e["index"] == 1 and e["field"] == field]
    assert matching, error.errors
    assert reason in matching[0]["reason"]
    assert matching[0]["kind"] == kind.value
    assert all(e["index"] == 1 for e in error.errors)  # the good row is not blamed
    assert f"{kind.value}[1].{field}" in str(error)
    assert "Nothing was written" in str(error)
    json.dumps(error.errors)  # the API returns them as they are
    assert full_state(shop) == before


def test_every_bad_row_is_counted_and_the_first_ones_listed(
    shop: neo4j.Driver, settings: Settings
) -> None:
    rows = [{**GOOD_STOCK, "on_hand": -i - 1} for i in range(120)]
    before = full_state(shop)
    with pytest.raises(UpsertRejected) as raised:
        upsert(shop, database=settings.neo4j.database, kind=UpsertKind.stock, rows=rows)
    assert raised.value.error_total == 120 and raised.value.rows_rejected == 120
    assert [e["index"] for e in raised.value.errors] == list(range(50))
    assert "... and 70 more" in raised.value.summary
    assert full_state(shop) == before


def test_a_row_that_is_not_an_object_is_refused(shop: neo4j.Driver, settings: Settings) -> None:
    with pytest.raises(UpsertRejected) as raised:
        upsert(
            shop,
            database=settings.neo4j.database,
            kind=UpsertKind.stock,
            rows=[GOOD_STOCK, ["P1", "W1", 3]],  # type: ignore[list-item]
        )
    assert raised.value.errors == [
        {
            "kind": "stock",
            "index": 1,
            "field": None,
            "value": '["P1", "W1", 3]',
            "reason": "a row must be a JSON object",
        }
    ]


def test_empty_and_oversized_requests_are_refused(shop: neo4j.Driver, settings: Settings) -> None:
    before = full_state(shop)
    database = settings.neo4j.database
    with pytest.raises(UpsertRejected, match="no rows"):
        upsert(shop, database=database, kind=UpsertKind.stock, rows=[])
    with pytest.raises(UpsertRejected, match="11 rows are more than the 10 one request may hold"):
        upsert(shop, database=database, kind=UpsertKind.stock, rows=[GOOD_STOCK] * 11, max_rows=10)
    with pytest.raises(UpsertRejected, match="unknown kind 'orders'"):
        upsert_many(shop, database=database, rows_by_kind={"orders": [{"order_id": "O1"}]})
    assert full_state(shop) == before


def test_a_failed_write_leaves_nothing_half_written(
    shop: neo4j.Driver, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Products are written first, then stock fails: the products must be rolled back too.
    def broken(self: GraphWriter, rows: list[dict[str, Any]]) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(GraphWriter, "_write_stock", broken)
    before = full_state(shop)
    with pytest.raises(RuntimeError, match="disk full"):
        upsert_many(
            shop,
            database=settings.neo4j.database,
            rows_by_kind={"products": [GOOD_PRODUCT], "stock": [GOOD_STOCK]},
        )
    assert full_state(shop) == before


def test_repeating_an_upsert_changes_nothing(shop: neo4j.Driver, settings: Settings) -> None:
    rows_by_kind: dict[UpsertKind | str, list[dict[str, Any]]] = dict(EXAMPLES)
    first = upsert_many(shop, database=settings.neo4j.database, rows_by_kind=rows_by_kind)
    after_first = snapshot(shop)
    second = upsert_many(shop, database=settings.neo4j.database, rows_by_kind=rows_by_kind)
    assert snapshot(shop) == after_first
    assert first.run_id != second.run_id
    hashes = {r["content_hash"] for r in runs(shop) if r["run_id"] in {first.run_id, second.run_id}}
    assert len(hashes) == 1


def test_examples_are_valid_and_cover_every_kind(shop: neo4j.Driver, settings: Settings) -> None:
    assert set(EXAMPLES) == set(UpsertKind)
    for kind, rows in EXAMPLES.items():
        result = upsert(shop, database=settings.neo4j.database, kind=kind, rows=rows)
        assert result.rows_written == len(rows)


def test_upsert_records_its_lineage(shop: neo4j.Driver, settings: Settings) -> None:
    loads = len(runs(shop))
    result = upsert(
        shop,
        database=settings.neo4j.database,
        kind=UpsertKind.products,
        rows=[GOOD_PRODUCT, {**GOOD_PRODUCT, "name": "Renamed again"}],
    )
    assert any("later rows win" in warning for warning in result.warnings)
    assert len(runs(shop)) == loads + 1
    run = one(shop, "MATCH (r:IngestRun {run_id: $id}) RETURN r", id=result.run_id)["r"]
    assert run["source"] == "api:products"
    assert run["status"] == "succeeded" and run["mode"] == "atomic"
    assert json.loads(run["rows"]) == {"products": 2}
    assert json.loads(run["rows_loaded"]) == {"products": 2}
    assert run["errors"] == 0 and run["rows_rejected"] == 0
    assert run["content_hash"].startswith("sha256:")
    assert run["started_at"] <= run["ended_at"]
    assert run["code_version"] == code_version()
    name = one(shop, "MATCH (p:Product {product_id: 'P1'}) RETURN p.name AS n")["n"]
    assert name == "Renamed again"


def test_custom_source_names_the_caller(shop: neo4j.Driver, settings: Settings) -> None:
    result = upsert(
        shop,
        database=settings.neo4j.database,
        kind=UpsertKind.stock,
        rows=[GOOD_STOCK],
        source="erp-sync",
    )
    source = one(shop, "MATCH (r:IngestRun {run_id: $id}) RETURN r.source AS s", id=result.run_id)
    assert source["s"] == "erp-sync:stock"
