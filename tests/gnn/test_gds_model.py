"""The Neo4j GDS baseline (FastRP + KNN) against the real Neo4j: score shapes, no leakage of
order lines at or after the training cut-off, and no in-memory graph left behind."""

from __future__ import annotations

from pathlib import Path

import neo4j
import numpy as np
import pytest

from gnn.models import MODELS
from gnn.models.base import FitContext
from gnn.models.gds import FastRPKNN
from gnn.snapshot import export_snapshot
from gnn.split import DAY_MS, temporal_split, training_view
from graph.settings import Settings
from graph.synthetic import ShopSpec, generate_shop
from tests.graph.test_ingest import ingest

pytestmark = pytest.mark.integration

PLANTED_PRODUCT = "GDS-PLANTED-P"
PLANTED_ORDER = "GDS-PLANTED-O"


def gds_graphs(driver: neo4j.Driver, database: str) -> list[str]:
    records = driver.execute_query(
        "CALL gds.graph.list() YIELD graphName RETURN graphName", database_=database
    ).records
    return [r["graphName"] for r in records]


def plant_test_period_orders(
    driver: neo4j.Driver, database: str, ts_ms: int, customers: list[str], product: str
) -> None:
    """A product only ever bought in the test period, in orders that also hold `product`."""
    driver.execute_query(
        "MERGE (p:Product {product_id: $planted}) SET p.name = 'Planted in the test period'",
        planted=PLANTED_PRODUCT,
        database_=database,
    )
    driver.execute_query(
        "UNWIND range(0, size($customers) - 1) AS i "
        "MATCH (c:Customer {customer_id: $customers[i]}) "
        "MATCH (planted:Product {product_id: $planted}), (other:Product {product_id: $other}) "
        "CREATE (c)-[:PLACED]->(o:Order {order_id: $order + '-' + toString(i), "
        "ts: datetime({epochMillis: $ts})}) "
        "CREATE (o)-[:CONTAINS {quantity: 1}]->(planted), (o)-[:CONTAINS {quantity: 1}]->(other)",
        customers=customers,
        planted=PLANTED_PRODUCT,
        other=product,
        order=PLANTED_ORDER,
        ts=ts_ms,
        database_=database,
    )


def test_fastrp_knn_scores_without_leakage_and_drops_its_graph(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    assert MODELS["fastrp-knn"] is FastRPKNN and FastRPKNN.needs_graph
    db = settings.neo4j.database
    shop = generate_shop(ShopSpec(customers=150, products=40, days=70, seed=4), tmp_path / "shop")
    ingest(graph, settings, shop.folder)

    before = temporal_split(export_snapshot(graph, database=db), val_days=14, test_days=14)
    snap = export_snapshot(graph, database=db)
    popular = snap.maps["product"].ids[int(np.bincount(snap.product).argmax())]
    buyers = snap.maps["customer"].ids[:30]
    plant_test_period_orders(graph, db, before.test_start_ms + DAY_MS // 2, buyers, popular)
    snap = export_snapshot(graph, database=db)
    split = temporal_split(snap, val_days=14, test_days=14)
    assert split.test_start_ms == before.test_start_ms
    planted = snap.maps["product"].index[PLANTED_PRODUCT]
    assert np.all(snap.ts_ms[snap.product == planted] >= split.test_start_ms)

    train = training_view(snap, split.val_start_ms)
    model = FastRPKNN(driver=graph, database=db)
    model.fit(train, FitContext())
    assert gds_graphs(graph, db) == []

    # (a) scores for every product, finite, float32
    customers = np.arange(snap.n_customers)
    scores = model.score(customers)
    assert scores.shape == (snap.n_customers, snap.n_products)
    assert scores.dtype == np.float32 and np.isfinite(scores).all()
    assert model.similarity.nnz > 0

    # (b) the planted test-period lines leave no trace: no neighbours either way ...
    assert model.similarity[planted].nnz == 0
    assert model.similarity[:, planted].nnz == 0
    # ... and removing them changes nothing (the fit is deterministic).
    graph.execute_query(
        "MATCH (o:Order) WHERE o.order_id STARTS WITH $order DETACH DELETE o",
        order=PLANTED_ORDER,
        database_=db,
    )
    again = FastRPKNN(driver=graph, database=db)
    again.fit(train, FitContext())
    assert (model.similarity != again.similarity).nnz == 0

    # Control: had the cut-off let the test period in, the planted product would have neighbours.
    plant_test_period_orders(graph, db, split.test_start_ms + DAY_MS // 2, buyers, popular)
    leaky = FastRPKNN(driver=graph, database=db)
    leaky.fit(training_view(snap, split.end_ms), FitContext())
    assert leaky.similarity[planted].nnz > 0

    # (c) no in-memory graph is left behind
    assert gds_graphs(graph, db) == []

    # The saved state scores the same.
    restored = FastRPKNN()
    restored.load_state(model.state())
    np.testing.assert_array_equal(restored.score(customers[:5]), scores[:5])
