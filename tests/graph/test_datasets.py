"""Real data sets: Superstore loaded twice matches its source file; no customer name stored;
Dominick's converted as DATASETS.md describes. The files come from the cache that
`make datasets` (part of `make test`) fills from the registries; the tests never fetch."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import neo4j
import pytest

from graph.datasets import OJ_BRANDS, fetch
from graph.settings import Settings
from tests.conftest import REPOSITORY, require_cache
from tests.graph.test_ingest import counts, ingest

CACHE = REPOSITORY / ".kgrec" / "datasets"


@pytest.fixture(scope="module")
def superstore() -> Path:
    raw = require_cache(CACHE / "superstore" / "raw" / "package" / "superstore.csv")
    return raw


def source_figures(raw: Path) -> dict[str, int]:
    with raw.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        "customers": len({r["Customer ID"] for r in rows}),
        "products": len({r["Product ID"] for r in rows}),
        "orders": len({r["Order ID"] for r in rows}),
        "order_lines": len(rows),
        "quantity": sum(int(r["Quantity"]) for r in rows),
        "pairs": len({(r["Order ID"], r["Product ID"]) for r in rows}),
    }


@pytest.mark.integration
def test_superstore_loads_twice_with_the_source_counts(
    graph: neo4j.Driver, settings: Settings, superstore: Path
) -> None:
    dataset = fetch("superstore", CACHE)
    assert dataset.cached  # no network in tests
    expected = source_figures(superstore)
    assert expected["order_lines"] == 9_994 and expected["customers"] == 793

    def figures() -> dict[str, int]:
        found = counts(graph)
        line = graph.execute_query(
            "MATCH ()-[r:CONTAINS]->() RETURN sum(r.quantity) AS q, sum(r.lines) AS lines"
        ).records[0]
        return {
            "customers": found["Customer"],
            "products": found["Product"],
            "orders": found["Order"],
            "order_lines": line["lines"],
            "quantity": line["q"],
            "pairs": found["CONTAINS"],
        }

    report = ingest(graph, settings, dataset.folder)
    assert report.error_total == 0
    first = figures()
    assert first == expected
    ingest(graph, settings, dataset.folder)
    assert figures() == first == expected
    # The taxonomy: 3 categories and 17 sub-categories.
    tops = graph.execute_query(
        "MATCH (c:Category) WHERE NOT (c)-[:SUBCATEGORY_OF]->() RETURN count(c) AS n"
    ).records[0]["n"]
    assert tops == 3 and counts(graph)["Category"] == 20
    segments = graph.execute_query("MATCH (s:Segment) RETURN count(s) AS n").records[0]["n"]
    assert segments == 3


@pytest.mark.integration
def test_no_superstore_customer_name_reaches_the_graph(
    graph: neo4j.Driver, settings: Settings, superstore: Path
) -> None:
    with superstore.open(newline="") as handle:
        names = {r["Customer Name"] for r in csv.DictReader(handle)}
    assert len(names) > 700
    ingest(graph, settings, fetch("superstore", CACHE).folder)
    stored = repr(
        graph.execute_query("MATCH (n) RETURN properties(n) AS p").records
        + graph.execute_query("MATCH ()-[r]->() RETURN properties(r) AS p").records
    )
    assert "CG-12520" in stored  # a customer id is there, so values are visible to the check
    assert [name for name in names if name in stored] == []


def test_dominicks_is_converted_as_documented() -> None:
    require_cache(CACHE / "dominicks-oj" / "input" / ".complete")
    dataset = fetch("dominicks-oj", CACHE)
    with (dataset.folder / "products.csv").open(newline="") as handle:
        products = list(csv.DictReader(handle))
    assert [p["name"] for p in products] == list(OJ_BRANDS)
    with (dataset.folder / "sales.csv").open(newline="") as handle:
        sales = list(csv.DictReader(handle))
    assert len(sales) == 106_139
    assert len({s["location_id"] for s in sales}) == 83
    weeks = Counter(s["period_start"] for s in sales)
    assert min(weeks) == "1990-06-14"  # week 40
    assert {s["on_promotion"] for s in sales} == {"true", "false"}
    assert all(int(float(s["units"])) > 0 for s in sales[:1000])
