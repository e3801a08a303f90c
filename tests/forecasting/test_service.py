"""`kgrec forecast` against the real Neo4j: versioned Forecast nodes, one current per product
and location, carrying the model version and the stock risk."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import neo4j
import pytest

from forecasting.service import load_daily_demand, run_forecast
from graph.settings import Settings
from graph.synthetic import ShopSpec, generate_shop
from tests.graph.test_ingest import ingest

pytestmark = pytest.mark.integration


def test_forecasts_are_versioned_with_one_current_per_product_and_location(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    shop = generate_shop(ShopSpec(customers=150, products=40, days=70, seed=4), tmp_path / "shop")
    ingest(graph, settings, shop.folder)
    db = settings.neo4j.database
    # The regressors reach the series: each product-targeted promotion's discount on its days
    # (ones ending before the history starts are not read), and every product's department.
    panel = load_daily_demand(graph, db, horizon=14)
    with (shop.folder / "promotions.csv").open() as f:
        promotions = [r for r in csv.DictReader(f) if r["target_type"] == "product"]
    checked = 0
    for row in promotions:
        first = date.fromisoformat(row["starts_at"][:10])
        day = (first - panel.origin).days
        if row["target_id"] in panel.discounts and 0 <= day < panel.end + 14:
            assert panel.discounts[row["target_id"]][day] >= float(row["discount_pct"]) / 100
            checked += 1
    assert checked > 0
    assert set(panel.groups) >= set(panel.series) and all(
        g.startswith("CAT-") for g in panel.groups.values()
    )
    first = run_forecast(graph, database=db, horizon=14, workers=2)
    second = run_forecast(graph, database=db, horizon=14, workers=2)
    assert first.version != second.version
    assert first.series == second.series > 20
    duplicates = graph.execute_query(
        "MATCH (f:Forecast {current: true}) WITH f.product_id AS p, f.location_id AS l, "
        "count(*) AS n WHERE n > 1 RETURN count(*) AS n",
        database_=db,
    ).records[0]["n"]
    assert duplicates == 0
    current = graph.execute_query(
        "MATCH (p:Product)-[:HAS_FORECAST]->(f:Forecast {current: true})-[:FOR_LOCATION]->(l) "
        "RETURN f, p.product_id AS product, l.location_id AS location",
        database_=db,
    ).records
    assert len(current) == second.locations
    assert {r["f"]["model_version"] for r in current} == {second.version}
    old = graph.execute_query(
        "MATCH (f:Forecast {current: false}) RETURN collect(DISTINCT f.model_version) AS v",
        database_=db,
    ).records[0]["v"]
    assert old == [first.version]
    # Weekly store sales (the `sales` file) get the pooled regression, week by week.
    weekly = [r for r in current if r["f"]["model"] == "PooledRegression"]
    assert weekly and {r["location"] for r in weekly} == {"STORE-1"}
    assert all(r["f"]["granularity"] == "week" and len(r["f"]["mean"]) == 2 for r in weekly)
    assert all(r["f"]["lower"][0] <= r["f"]["mean"][0] <= r["f"]["upper"][0] for r in weekly)
    stocked = [r["f"] for r in current if r["f"]["on_hand"] is not None]
    assert stocked
    for f in stocked:
        days = 14 if f["model"] != "PooledRegression" else 2
        assert len(f["mean"]) == days and len(f["lower"]) == days and len(f["upper"]) == days
        assert 0.0 <= f["stockout_probability"] <= 1.0
        assert f["model"] in {
            "SeasonalNaive",
            "ETS",
            "SARIMAX",
            "HistoricAverage",
            "PooledDailyRegression",
            "PooledRegression",
        }
        if f["on_hand"] == 0 and f["demand_over_lead_time"] > 0:
            assert f["stockout_probability"] > 0.5
