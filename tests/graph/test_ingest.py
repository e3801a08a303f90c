"""Ingestion against the real Neo4j: exact graph, idempotent reloads, incremental loads,
atomic refusal of bad input, quarantine, dry runs, lineage and data minimisation."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import neo4j
import pytest

from graph.errors import ValidationFailed
from graph.ingest.service import IngestOptions, Ingestor, IngestRejected, IngestReport
from graph.schema import NODE_KEYS, apply_schema
from graph.settings import Settings

pytestmark = pytest.mark.integration

TINY_SHOP = Path(__file__).resolve().parent.parent / "data" / "tiny_shop"


def ingest(driver: neo4j.Driver, settings: Settings, folder: Path, **options: Any) -> IngestReport:
    apply_schema(
        driver,
        database=settings.neo4j.database,
        embedding_dimensions=settings.app.embedding_dimensions,
    )
    ingestor = Ingestor(driver, database=settings.neo4j.database, options=IngestOptions(**options))
    return ingestor.run(folder)


def snapshot(driver: neo4j.Driver) -> tuple[list[Any], list[Any]]:
    """Every node and relationship with its properties, lineage nodes left out."""
    nodes = driver.execute_query(
        "MATCH (n) WHERE NOT n:IngestRun RETURN labels(n) AS labels, properties(n) AS props"
    ).records
    node_rows = sorted(repr((r["labels"], sorted(r["props"].items()))) for r in nodes)
    rels = driver.execute_query(
        "MATCH (a)-[r]->(b) RETURN labels(a)[0] AS a_label, properties(a) AS a, type(r) AS type, "
        "properties(r) AS props, labels(b)[0] AS b_label, properties(b) AS b"
    ).records

    def key(label: str, props: dict[str, Any]) -> Any:
        return props.get(NODE_KEYS.get(label, ""), props.get("entity_id"))

    rel_rows = sorted(
        repr(
            (
                r["a_label"],
                key(r["a_label"], r["a"]),
                r["type"],
                sorted(r["props"].items()),
                r["b_label"],
                key(r["b_label"], r["b"]),
            )
        )
        for r in rels
    )
    return node_rows, rel_rows


def counts(driver: neo4j.Driver) -> dict[str, int]:
    labels = driver.execute_query("MATCH (n) RETURN labels(n)[0] AS label, count(*) AS n").records
    types = driver.execute_query("MATCH ()-[r]->() RETURN type(r) AS type, count(*) AS n").records
    return {r["label"]: r["n"] for r in labels} | {r["type"]: r["n"] for r in types}


def purchased(driver: neo4j.Driver) -> dict[tuple[str, str], tuple[int, int]]:
    records = driver.execute_query(
        "MATCH (c:Customer)-[r:PURCHASED]->(p:Product) "
        "RETURN c.customer_id AS c, p.product_id AS p, r.count AS count, r.quantity AS quantity"
    ).records
    return {(r["c"], r["p"]): (r["count"], r["quantity"]) for r in records}


def expected_purchased(*order_files: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """PURCHASED computed straight from the source files: distinct orders and total quantity."""
    orders: dict[tuple[str, str], set[str]] = {}
    quantity: Counter[tuple[str, str]] = Counter()
    for path in order_files:
        with path.open() as handle:
            for row in csv.DictReader(handle):
                pair = (row["customer_id"], row["product_id"])
                orders.setdefault(pair, set()).add(row["order_id"])
                quantity[pair] += int(row["quantity"])
    return {pair: (len(orders[pair]), quantity[pair]) for pair in orders}


def copy_shop(tmp_path: Path, files: list[str] | None = None) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    for path in TINY_SHOP.iterdir():
        if files is None or path.stem in files:
            shutil.copy(path, folder / path.name)
    return folder


def test_tiny_shop_builds_the_expected_graph(graph: neo4j.Driver, settings: Settings) -> None:
    report = ingest(graph, settings, TINY_SHOP)
    assert report.status == "succeeded"
    assert report.error_total == 0
    found = counts(graph)
    assert found["Product"] == 5 and found["Category"] == 6 and found["Order"] == 4
    assert found["Customer"] == 4  # C4 comes from an order line only
    assert found["CONTAINS"] == 6  # O2 names P1 twice: one relationship
    assert found["PURCHASED"] == 5
    # Repeated order lines add up: O2 has P1 twice (1 + 3).
    line = graph.execute_query(
        "MATCH (:Order {order_id: 'O2'})-[r:CONTAINS]->(:Product {product_id: 'P1'}) RETURN r"
    ).records[0]["r"]
    assert line["quantity"] == 4 and line["lines"] == 2
    assert line["unit_price"] == pytest.approx((1 * 4.99 + 3 * 4.50) / 4)
    assert purchased(graph) == expected_purchased(TINY_SHOP / "orders.csv")
    assert purchased(graph)[("C1", "P1")] == (2, 6)
    # One product id with two names: the last row's name, both kept.
    binder = graph.execute_query("MATCH (p:Product {product_id: 'P3'}) RETURN p").records[0]["p"]
    assert binder["name"] == "Ring binder (blue)"
    assert binder["names"] == ["Ring binder", "Ring binder (blue)"]
    assert any("several names" in warning for warning in report.warnings)
    # Taxonomy, brand, attributes, promotions, stock, sales, knowledge triples.
    path = graph.execute_query(
        "MATCH (:Product {product_id: 'P1'})-[:IN_CATEGORY]->(:Category {category_id: 'paper'})"
        "-[:SUBCATEGORY_OF]->(:Category {category_id: 'office'})-[:SUBCATEGORY_OF]->"
        "(:Category {category_id: 'root'}) RETURN count(*) AS n"
    ).records[0]["n"]
    assert path == 1
    targets = graph.execute_query(
        "MATCH (pr:Promotion)-[:APPLIES_TO]->(t) "
        "RETURN pr.promotion_id AS id, labels(t)[0] AS label"
    ).records
    assert {(r["id"], r["label"]) for r in targets} == {
        ("PR1", "Category"),
        ("PR2", "Brand"),
        ("PR3", "Product"),
    }
    stock = graph.execute_query(
        "MATCH (:Product {product_id: 'P4'})-[s:STOCKED_AT]->(l:Location) "
        "RETURN l.location_id AS l, s.on_hand AS on_hand ORDER BY l"
    ).records
    assert [(r["l"], r["on_hand"]) for r in stock] == [("S1", 1), ("W1", 4)]
    sold = graph.execute_query(
        "MATCH (:Product {product_id: 'P1'})-[s:SOLD]->(l:Location) "
        "RETURN l.location_id AS l, toString(s.period_start) AS week, s.units AS units "
        "ORDER BY l, week"
    ).records
    assert [(r["l"], r["week"], r["units"]) for r in sold] == [
        ("ALL", "2023-03-06", 40.0),
        ("S1", "2023-03-06", 12.0),
        ("S1", "2023-03-13", 30.0),
    ]
    related = graph.execute_query(
        "MATCH (h)-[r:RELATED]->(t) RETURN r.relation AS rel, labels(t)[0] AS label, "
        "coalesce(t.product_id, t.entity_id) AS tail ORDER BY rel"
    ).records
    assert [(r["rel"], r["label"], r["tail"]) for r in related] == [
        ("based_in", "Entity", "country:Sweden"),
        ("compatible_with", "Product", "P4"),
        ("made_of", "Entity", "material:recycled paper"),
    ]
    views = graph.execute_query(
        "MATCH (:Customer {customer_id: 'C1'})-[v:VIEWED]->(:Product {product_id: 'P4'}) RETURN v"
    ).records[0]["v"]
    assert views["count"] == 2
    rating = graph.execute_query("MATCH ()-[r:RATED]->() RETURN r.value AS v").records
    assert [r["v"] for r in rating] == [5.0]


def test_reloading_changes_nothing(graph: neo4j.Driver, settings: Settings) -> None:
    ingest(graph, settings, TINY_SHOP)
    first = snapshot(graph)
    ingest(graph, settings, TINY_SHOP)
    assert snapshot(graph) == first
    runs = graph.execute_query("MATCH (r:IngestRun) RETURN r.content_hash AS h").records
    assert len(runs) == 2 and runs[0]["h"] == runs[1]["h"]


def test_small_batches_keep_repeated_lines_exact(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    # Batches of 100 rows put the lines of one order (and repeats of a pair) in different
    # transactions: quantities must still add up, and a reload must still change nothing.
    folder = copy_shop(tmp_path, ["categories", "products"])
    with (folder / "orders.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "customer_id", "product_id", "ts", "quantity"])
        for i in range(450):
            order = f"O{i % 7}"
            writer.writerow([order, f"C{i % 7}", f"P{i % 5 + 1}", "2023-05-01T10:00:00", 1 + i % 3])
    ingest(graph, settings, folder, batch_size=100)
    assert purchased(graph) == expected_purchased(folder / "orders.csv")
    first = snapshot(graph)
    ingest(graph, settings, folder, batch_size=100)
    assert snapshot(graph) == first


def test_incremental_load_adds_orders(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    ingest(graph, settings, TINY_SHOP)
    later = tmp_path / "later"
    later.mkdir()
    (later / "orders.csv").write_text(
        "order_id,customer_id,product_id,ts,quantity\n"
        "O10,C1,P1,2023-06-01T10:00:00,2\n"  # a third order of P1 for C1
        "O11,C3,P5,2023-06-02T10:00:00,1\n"  # C3's first purchase
        "O11,C3,P5,2023-06-02T10:00:00,4\n"
    )
    ingest(graph, settings, later)
    assert purchased(graph) == expected_purchased(TINY_SHOP / "orders.csv", later / "orders.csv")
    assert purchased(graph)[("C1", "P1")] == (3, 8)
    assert purchased(graph)[("C3", "P5")] == (1, 5)
    last = graph.execute_query(
        "MATCH (:Customer {customer_id: 'C1'})-[r:PURCHASED]->(:Product {product_id: 'P1'}) "
        "RETURN toString(r.last_ts) AS t"
    ).records[0]["t"]
    assert last.startswith("2023-06-01T10:00")
    assert counts(graph)["Order"] == 6


def write_orders_with_bad_rows(folder: Path) -> dict[int, str]:
    """A thousand order lines, five of them bad; returns line number -> expected reason."""
    bad = {
        101: "greater than 0",  # quantity 0
        202: "valid datetime",  # ts not a date
        303: "unknown product 'P99'",
        404: "required value is missing",  # no customer
        505: "fields but the header has",  # a short row
    }
    with (folder / "orders.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "customer_id", "product_id", "ts", "quantity"])
        for line in range(2, 1002):
            row = [f"B{line}", f"C{line % 50}", f"P{line % 5 + 1}", "2023-05-01T10:00:00", "1"]
            if line == 101:
                row[4] = "0"
            elif line == 202:
                row[3] = "yesterday"
            elif line == 303:
                row[2] = "P99"
            elif line == 404:
                row[1] = ""
            elif line == 505:
                row = row[:3]
            writer.writerow(row)
    return bad


def test_bad_rows_refuse_the_whole_load(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    ingest(graph, settings, TINY_SHOP)
    before = snapshot(graph)
    folder = tmp_path / "bad"
    folder.mkdir()
    bad = write_orders_with_bad_rows(folder)
    with pytest.raises(IngestRejected) as raised:
        ingest(graph, settings, folder)
    message = str(raised.value)
    for line, reason in bad.items():
        assert f"orders.csv:{line}" in message
        matching = [e for e in raised.value.report.errors if e.line == line]
        assert matching and reason in matching[0].describe()
    assert "Nothing was written: the graph is unchanged" in message
    assert raised.value.report.rows_rejected == 5
    assert snapshot(graph) == before
    assert graph.execute_query("MATCH (r:IngestRun) RETURN count(r) AS n").records[0]["n"] == 1


def test_quarantine_loads_the_rest_and_rejects_exactly_the_bad_rows(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    ingest(graph, settings, TINY_SHOP)
    folder = tmp_path / "bad"
    folder.mkdir()
    bad = write_orders_with_bad_rows(folder)
    report = ingest(graph, settings, folder, mode="quarantine", rejects_dir=tmp_path / "rejects")
    assert report.status == "succeeded"
    assert report.files["orders"].rows == 1000
    assert report.files["orders"].rejected == 5
    assert report.files["orders"].loaded == 995
    assert report.rejects_file is not None
    with open(report.rejects_file) as handle:
        rejected = list(csv.DictReader(handle))
    assert sorted(int(r["line"]) for r in rejected) == sorted(bad)
    for row in rejected:
        assert bad[int(row["line"])] in row["reasons"]
    loaded = graph.execute_query(
        "MATCH (o:Order) WHERE o.order_id STARTS WITH 'B' RETURN count(o) AS n"
    ).records[0]["n"]
    assert loaded == 995
    run = graph.execute_query(
        "MATCH (r:IngestRun {run_id: $id}) RETURN r", id=report.run_id
    ).records[0]["r"]
    assert run["rows_rejected"] == 5 and run["mode"] == "quarantine"


def test_dry_run_writes_nothing(graph: neo4j.Driver, settings: Settings) -> None:
    report = ingest(graph, settings, TINY_SHOP, dry_run=True)
    assert report.status == "validated"
    assert report.files["orders"].rows == 7
    assert counts(graph) == {}


def test_lineage_records_the_load(graph: neo4j.Driver, settings: Settings) -> None:
    report = ingest(graph, settings, TINY_SHOP)
    run = graph.execute_query(
        "MATCH (r:IngestRun {run_id: $id}) RETURN r", id=report.run_id
    ).records[0]["r"]
    assert run["status"] == "succeeded"
    assert run["source"] == str(TINY_SHOP)
    assert run["content_hash"] == report.content_hash and run["content_hash"].startswith("sha256:")
    assert '"orders": 7' in run["rows"]
    assert run["errors"] == 0
    assert run["started_at"] <= run["ended_at"]
    assert run["code_version"].startswith("0.")


def test_personal_data_is_never_stored(graph: neo4j.Driver, settings: Settings) -> None:
    report = ingest(graph, settings, TINY_SHOP)
    warning = next(w for w in report.warnings if w.startswith("customers.csv"))
    assert "Customer Name, email" in warning and "personal data" in warning
    stored = repr(
        graph.execute_query("MATCH (n) RETURN properties(n) AS p").records
        + graph.execute_query("MATCH ()-[r]->() RETURN properties(r) AS p").records
    )
    assert "Claire" not in repr(TINY_SHOP) and "C1" in stored  # the check can see values
    for secret in ("Claire Gute", "claire@example.com", "Darrin Van Huff", "Sean O'Donnell"):
        assert secret not in stored


def test_missing_required_column_names_file_and_column(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "stock.csv").write_text("product_id,on_hand\nP1,3\n")
    with pytest.raises(ValidationFailed, match=r"stock.csv: line 1: missing required column"):
        ingest(graph, settings, folder)


def test_category_cycle_is_refused(graph: neo4j.Driver, settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "categories.csv").write_text("category_id,name,parent_id\na,A,b\nb,B,a\nc,C,\n")
    with pytest.raises(IngestRejected, match="would be its own ancestor"):
        ingest(graph, settings, folder)
    assert counts(graph) == {}
