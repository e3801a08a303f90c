"""The serving snapshot read from the real graph: facts, stock, promotions, active vectors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import neo4j
import numpy as np
import pytest

from gnn.models import MODELS, FitContext
from gnn.registry import Registry
from gnn.snapshot import export_snapshot
from graph.settings import Settings
from recommender.engine import GLOBAL_POPULAR, PERSONAL, Engine
from recommender.snapshot import load_snapshot
from tests.graph.test_ingest import TINY_SHOP, ingest

pytestmark = pytest.mark.integration


def test_snapshot_reads_the_graph_and_the_active_vectors(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    db = settings.neo4j.database
    ingest(graph, settings, TINY_SHOP)
    # No active model yet: everyone gets popular products.
    cold = load_snapshot(graph, database=db, now=datetime(2023, 5, 5, tzinfo=UTC))
    assert cold.version_id is None and cold.product_vectors is None
    assert cold.product_ids == ["P1", "P2", "P3", "P4", "P5"]
    p = cold.product_index
    assert cold.on_hand[p["P1"]] == 120 and cold.on_hand[p["P2"]] == 0
    assert cold.lead_time_days[p["P4"]] == 21
    # 2023-05-05: "Acme days" (brand Acme: P4, P5) runs; "Paper week" is over.
    assert {cold.product_ids[i]: pr.promotion_id for i, pr in cold.promotions.items()} == {
        "P4": "PR2",
        "P5": "PR2",
    }
    june = load_snapshot(graph, database=db, now=datetime(2023, 6, 10, tzinfo=UTC))
    assert {june.product_ids[i] for i in june.promotions} == {"P3"}
    buyers = graph.execute_query(
        "MATCH (c:Customer)-[:PURCHASED]->(p:Product {product_id: 'P1'}) RETURN count(c) AS n",
        database_=db,
    ).records[0]["n"]
    assert cold.popularity[p["P1"]] == buyers
    items = Engine(cold).recommend(next(iter(cold.customer_index)), k=3)
    assert items and all(i.strategy != PERSONAL for i in items)
    assert "P2" not in [i.product_id for i in items]  # none in stock

    snap = export_snapshot(graph, database=db)
    model = MODELS["kg-gnn"](epochs=1, dim=settings.app.embedding_dimensions)
    model.fit(snap, FitContext())
    registry = Registry(graph, database=db, root=tmp_path / "models")
    version = registry.register(model, snapshot=snap, metrics={}, training={})
    registry.activate(version.version_id, margin=0.0)
    warm = load_snapshot(graph, database=db)
    assert warm.version_id == version.version_id
    assert warm.product_vectors is not None and warm.customer_vectors is not None
    _users, products = model.embeddings()  # type: ignore[misc]
    row = snap.maps["product"].index["P3"]
    np.testing.assert_allclose(warm.product_vectors[p["P3"]], products[row], rtol=1e-6)
    customer = snap.maps["customer"].ids[0]
    personal = Engine(warm).recommend(customer, k=2)
    assert personal[0].strategy == PERSONAL
    assert Engine(warm).recommend("someone new", k=1)[0].strategy == GLOBAL_POPULAR
