"""Against the real Neo4j: the export matches the graph, the registry's activation gate and
rollback round trip, embeddings on the nodes and the vector index, and `kgrec train`."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pytest

from gnn.models import MODELS, FitContext
from gnn.registry import Registry, RegistryError
from gnn.snapshot import export_snapshot
from gnn.split import temporal_split, training_view
from graph.settings import Settings
from graph.synthetic import ShopSpec, generate_shop
from tests.api.test_cli import KGREC, environment, run_kgrec, session_server_env
from tests.conftest import free_port
from tests.graph.test_ingest import TINY_SHOP, ingest

pytestmark = pytest.mark.integration

SMALL = ShopSpec(customers=300, products=60, days=90, seed=5, lines_per_customer=10)


def small_shop_env(graph: neo4j.Driver, settings: Settings, tmp_path: Path) -> dict[str, str]:
    """Loads the small generated shop; the CLI environment for it, with its own home."""
    ingest(graph, settings, generate_shop(SMALL, tmp_path / "shop").folder)
    return {**session_server_env(settings), "KGREC_HOME": str(tmp_path / "home")}


def count(driver: neo4j.Driver, settings: Settings, query: str) -> int:
    records = driver.execute_query(query, database_=settings.neo4j.database).records
    return int(records[0][0])


def test_export_counts_equal_graph_counts(graph: neo4j.Driver, settings: Settings) -> None:
    ingest(graph, settings, TINY_SHOP)
    snap = export_snapshot(graph, database=settings.neo4j.database, batch_size=3)
    labels = {
        "customer": "Customer",
        "product": "Product",
        "category": "Category",
        "brand": "Brand",
        "attribute": "Attribute",
        "promotion": "Promotion",
        "segment": "Segment",
        "region": "Region",
    }
    for name, label in labels.items():
        expected = count(graph, settings, f"MATCH (n:{label}) RETURN count(n)")
        assert snap.counts[f"nodes.{name}"] == expected, name
    lines = count(
        graph, settings, "MATCH (:Customer)-[:PLACED]->(:Order)-[r:CONTAINS]->() RETURN count(r)"
    )
    assert snap.counts["interactions"] == lines > 0
    assert float(snap.quantity.sum()) == count(
        graph, settings, "MATCH ()-[r:CONTAINS]->() RETURN sum(r.quantity)"
    )
    for name, rel in {
        "in_category": "IN_CATEGORY",
        "subcategory_of": "SUBCATEGORY_OF",
        "has_brand": "HAS_BRAND",
        "has_attribute": "HAS_ATTRIBUTE",
        "in_segment": "IN_SEGMENT",
    }.items():
        expected = count(graph, settings, f"MATCH ()-[r:{rel}]->() RETURN count(r)")
        assert snap.counts[f"edges.{name}"] == expected, name
    promotes = count(graph, settings, "MATCH (:Promotion)-[r:APPLIES_TO]->() RETURN count(r)")
    assert promotes == sum(
        snap.counts[f"edges.promotes_{t}"] for t in ("product", "category", "brand")
    )
    events = count(
        graph,
        settings,
        "MATCH (:Customer)-[r:VIEWED|CLICKED|ADDED_TO_CART]->(:Product) RETURN sum(size(r.ts))",
    )
    assert snap.counts["events"] == events > 0
    # Stable id maps both ways, sorted; times ascending.
    ids = snap.maps["product"].ids
    assert ids == sorted(ids) and all(snap.maps["product"].index[i] == n for n, i in enumerate(ids))
    assert np.all(np.diff(snap.ts_ms) >= 0)
    assert (
        snap.ingest_runs
        and snap.data_hash() == export_snapshot(graph, database=settings.neo4j.database).data_hash()
    )


def _metrics(ndcg: float) -> dict[str, Any]:
    cell = {"value": ndcg, "low": ndcg, "high": ndcg}
    return {"validation": {"slices": {"all": {"users": 10, "metrics": {"ndcg@10": cell}}}}}


def _audit(graph: neo4j.Driver, settings: Settings) -> list[dict[str, Any]]:
    records = graph.execute_query(
        "MATCH (e:AuditEvent) RETURN e ORDER BY e.ts", database_=settings.neo4j.database
    ).records
    return [dict(r["e"]) for r in records]


def test_activation_gate_and_rollback_round_trip(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    db = settings.neo4j.database
    shop = generate_shop(SMALL, tmp_path / "shop")
    ingest(graph, settings, shop.folder)
    snap = export_snapshot(graph, database=db)
    split = temporal_split(snap, val_days=14, test_days=0)
    train = training_view(snap, split.val_start_ms)
    registry = Registry(graph, database=db, root=tmp_path / "models")

    def trained(name: str, seed: int) -> Any:
        model = MODELS[name](epochs=2, dim=settings.app.embedding_dimensions)
        model.fit(train, FitContext(seed=seed))
        return model

    first = registry.register(
        trained("kg-gnn", 1), snapshot=snap, metrics=_metrics(0.20), training={}
    )
    worse = registry.register(
        trained("lightgcn", 2), snapshot=snap, metrics=_metrics(0.15), training={}
    )
    better = registry.register(
        trained("kg-gnn", 3), snapshot=snap, metrics=_metrics(0.30), training={}
    )
    popular = MODELS["popularity"]()
    popular.fit(train, FitContext())
    no_vectors = registry.register(popular, snapshot=snap, metrics=_metrics(0.9), training={})
    assert (first.artifacts / "embeddings.npz").exists()
    assert json.loads((first.artifacts / "id_maps.json").read_text())["product"] == (
        snap.maps["product"].ids
    )
    assert registry.active() is None

    registry.activate(first.version_id, margin=0.05)
    assert registry.active().version_id == first.version_id  # type: ignore[union-attr]
    with pytest.raises(RegistryError, match="does not beat"):
        registry.activate(worse.version_id, margin=0.05)
    with pytest.raises(RegistryError, match="needs --reason"):
        registry.activate(worse.version_id, margin=0.05, force=True)
    with pytest.raises(RegistryError, match="no embeddings"):
        registry.activate(no_vectors.version_id, margin=0.05)
    assert registry.active().version_id == first.version_id  # type: ignore[union-attr]

    registry.activate(better.version_id, margin=0.05)
    forced = registry.activate(worse.version_id, margin=0.05, force=True, reason="test force")
    assert forced.forced and forced.previous.version_id == better.version_id  # type: ignore[union-attr]
    rolled = registry.rollback()
    assert rolled.version.version_id == better.version_id
    actives = count(graph, settings, "MATCH (v:ModelVersion {active: true}) RETURN count(v)")
    assert actives == 1

    events = _audit(graph, settings)
    assert [e["action"] for e in events] == ["activate", "activate", "activate", "rollback"]
    assert events[2]["forced"] is True and events[2]["reason"] == "test force"
    assert events[2]["before"] == better.version_id and events[2]["after"] == worse.version_id
    assert events[3]["after"] == better.version_id and events[3]["actor"].startswith("cli:")

    # The nodes carry the active version's vectors.
    vectors = np.load(better.artifacts / "embeddings.npz")["products"]
    product_id = snap.maps["product"].ids[7]
    stored = graph.execute_query(
        "MATCH (p:Product {product_id: $id}) RETURN p.embedding AS e, p.embedding_version AS v",
        id=product_id,
        database_=db,
    ).records[0]
    assert stored["v"] == better.version_id
    np.testing.assert_allclose(stored["e"], vectors[7], rtol=1e-6)

    # Vectors of another size than the indexes are refused, even forced.
    narrow = MODELS["kg-gnn"](epochs=1, dim=16)
    narrow.fit(train, FitContext())
    odd = registry.register(narrow, snapshot=snap, metrics=_metrics(0.9), training={})
    with pytest.raises(RegistryError, match="16-dimensional"):
        registry.activate(odd.version_id, margin=0.0, force=True, reason="wrong size")
    assert registry.active().version_id == better.version_id  # type: ignore[union-attr]


def test_vector_index_finds_a_planted_embedding(graph: neo4j.Driver, settings: Settings) -> None:
    db = settings.neo4j.database
    ingest(graph, settings, TINY_SHOP)
    dims = settings.app.embedding_dimensions
    rng = np.random.default_rng(0)
    ids = [
        r["id"]
        for r in graph.execute_query(
            "MATCH (p:Product) RETURN p.product_id AS id ORDER BY id", database_=db
        ).records
    ]
    rows = [{"id": i, "e": rng.normal(size=dims).tolist()} for i in ids]
    planted = rows[len(rows) // 2]
    graph.execute_query(
        "UNWIND $rows AS row MATCH (p:Product {product_id: row.id}) SET p.embedding = row.e",
        rows=rows,
        database_=db,
    )
    graph.execute_query("CALL db.awaitIndexes(60)", database_=db)
    query = (np.asarray(planted["e"]) + rng.normal(scale=0.05, size=dims)).tolist()
    records = graph.execute_query(
        "CALL db.index.vector.queryNodes('product_embedding', 3, $q) YIELD node, score "
        "RETURN node.product_id AS id, score",
        q=query,
        database_=db,
    ).records
    assert records[0]["id"] == planted["id"]
    assert records[0]["score"] > records[1]["score"]


def test_kgrec_train_registers_and_activates(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    env = small_shop_env(graph, settings, tmp_path)
    result = run_kgrec(
        "train", "--model", "kg-gnn", "--max-epochs", "3", "--val-days", "14", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "Registered kg-gnn-" in result.stdout and "Activated kg-gnn-" in result.stdout
    assert "peak memory" in result.stdout
    listed = run_kgrec("models", "list", env=env)
    assert "active" in listed.stdout
    audit = run_kgrec("models", "audit", env=env)
    assert audit.returncode == 0 and "activate" in audit.stdout and "cli:" in audit.stdout
    # The drift reference is the training snapshot's: every order line, per top category.
    (folder,) = (Path(env["KGREC_HOME"]) / "models").iterdir()
    reference = json.loads((folder / "drift_reference.json").read_text())
    lines = count(
        graph, settings, "MATCH (:Customer)-[:PLACED]->(:Order)-[l:CONTAINS]->() RETURN count(l)"
    )
    assert sum(reference["interaction_mix"]["counts"].values()) == lines
    assert len(reference["score_distribution"]["shares"]) >= 2
    product = graph.execute_query(
        "MATCH (p:Product) RETURN p.product_id AS id ORDER BY id LIMIT 1",
        database_=settings.neo4j.database,
    ).records[0]["id"]
    similar = run_kgrec("models", "similar", product, "--k", "3", env=env)
    assert similar.returncode == 0, similar.stderr
    assert similar.stdout.count("P0") >= 3
    bad = run_kgrec("train", "--model", "nope", env=env)
    assert bad.returncode == 1 and "unknown model 'nope'" in bad.stderr
    rollback = run_kgrec("models", "rollback", env=env)
    assert rollback.returncode == 1 and "nothing to roll back to" in rollback.stderr


def test_kgrec_evaluate_prints_the_table_and_writes_json(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    env = small_shop_env(graph, settings, tmp_path)
    output = tmp_path / "eval.json"
    result = run_kgrec(
        "evaluate",
        "--models", "popularity,itemknn,kg-gnn",
        "--val-days", "14",
        "--test-days", "14",
        "--bootstrap", "100",
        "--max-epochs", "2",
        "--json", str(output),
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "NDCG@10" in result.stdout and "itemknn" in result.stdout
    payload = json.loads(output.read_text())
    assert set(payload["models"]) == {"popularity", "itemknn", "kg-gnn"}
    cell = payload["models"]["itemknn"]["test"]["slices"]["all"]["metrics"]["ndcg@10"]
    assert cell["low"] <= cell["value"] <= cell["high"]
    for slice_name in ("all", "cold_customers", "new_products"):
        assert slice_name in payload["models"]["kg-gnn"]["test"]["slices"]
    assert payload["split"]["test_interactions"] > 0
    assert payload["models"]["kg-gnn"]["validation"]["period"] == "validation"


@pytest.mark.slow
def test_demo_loads_forecasts_trains_and_activates(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    """What `make demo` runs, on an empty graph; a second run trains nothing."""
    env = {**session_server_env(settings), "KGREC_HOME": str(tmp_path / "home")}
    first = run_kgrec("demo", "--no-serve", env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "Activated kg-gnn-" in first.stdout and "kgrec demo is ready" in first.stdout
    db = settings.neo4j.database
    assert count(graph, settings, "MATCH (v:ModelVersion {active: true}) RETURN count(v)") == 1
    assert count(graph, settings, "MATCH (f:Forecast {current: true}) RETURN count(f)") > 0
    with_vectors = count(
        graph, settings, "MATCH (p:Product) WHERE p.embedding IS NOT NULL RETURN count(p)"
    )
    assert with_vectors == count(graph, settings, "MATCH (p:Product) RETURN count(p)") > 0
    # The second run trains nothing and ends serving the API: every printed curl works.
    port = free_port()
    server = subprocess.Popen(
        [*KGREC, "demo", "--port", str(port)],
        env=environment(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        output = []
        for line in server.stdout:
            output.append(line)
            if line.startswith("Stop the API with Ctrl-C"):
                break
        text = "".join(output)
        assert "is active; nothing trained" in text, text
        commands = [line.strip() for line in output if line.strip().startswith("curl ")]
        assert len(commands) >= 10, text
        deadline = time.monotonic() + 120
        ready = commands[0] + " -o /dev/null -w '%{http_code}'"  # readiness: the snapshot loaded
        while subprocess.run(ready, shell=True, capture_output=True, text=True).stdout != "200":
            assert time.monotonic() < deadline, "the demo API did not become ready"
            time.sleep(0.5)
        for command in commands:
            done = subprocess.run(
                command + " -o /dev/null -w '%{http_code}'",
                shell=True,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.stdout in ("200", "202"), (command, done.stdout, done.stderr)
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert (
        graph.execute_query("MATCH (v:ModelVersion) RETURN count(v) AS n", database_=db).records[0][
            "n"
        ]
        == 1
    )
