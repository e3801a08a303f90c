"""The schema: one uniqueness constraint per node key, the vector indexes, and idempotence."""

from __future__ import annotations

import neo4j
import pytest

from graph.errors import SchemaError
from graph.schema import NODE_KEYS, VECTOR_INDEXES, apply_schema
from graph.settings import Settings

pytestmark = pytest.mark.integration


def constraints(driver: neo4j.Driver, database: str) -> list[dict[str, object]]:
    return [
        r.data()
        for r in driver.execute_query(
            "SHOW CONSTRAINTS YIELD name, type, entityType, labelsOrTypes, properties "
            "RETURN * ORDER BY name",
            database_=database,
        ).records
    ]


def indexes(driver: neo4j.Driver, database: str) -> list[dict[str, object]]:
    return [
        r.data()
        for r in driver.execute_query(
            "SHOW INDEXES YIELD name, type, entityType, labelsOrTypes, properties, options, state "
            "RETURN * ORDER BY name",
            database_=database,
        ).records
    ]


def test_schema_applied_twice_is_unchanged(graph: neo4j.Driver, settings: Settings) -> None:
    db, dims = settings.neo4j.database, settings.app.embedding_dimensions
    apply_schema(graph, database=db, embedding_dimensions=dims)
    before = (constraints(graph, db), indexes(graph, db))
    report = apply_schema(graph, database=db, embedding_dimensions=dims)
    after = (constraints(graph, db), indexes(graph, db))
    assert after == before
    assert report.constraints == [c["name"] for c in after[0]]
    assert all(i["state"] == "ONLINE" for i in after[1])


def test_every_node_key_is_unique(graph: neo4j.Driver, settings: Settings) -> None:
    db = settings.neo4j.database
    apply_schema(graph, database=db, embedding_dimensions=settings.app.embedding_dimensions)
    unique = {
        (c["labelsOrTypes"][0], c["properties"][0])  # type: ignore[index]
        for c in constraints(graph, db)
        if "UNIQUENESS" in str(c["type"]) and c["entityType"] == "NODE"
    }
    assert set(NODE_KEYS.items()) <= unique
    # The database enforces it: a second product with the same key is refused.
    graph.execute_query("CREATE (:Product {product_id: 'p1'})", database_=db)
    with pytest.raises(neo4j.exceptions.ConstraintError):
        graph.execute_query("CREATE (:Product {product_id: 'p1'})", database_=db)


def test_vector_indexes_have_the_configured_size(graph: neo4j.Driver, settings: Settings) -> None:
    db, dims = settings.neo4j.database, settings.app.embedding_dimensions
    apply_schema(graph, database=db, embedding_dimensions=dims)
    vector = {i["name"]: i for i in indexes(graph, db) if i["type"] == "VECTOR"}
    assert set(VECTOR_INDEXES) <= set(vector)
    product = vector["product_embedding"]
    assert product["labelsOrTypes"] == ["Product"] and product["properties"] == ["embedding"]
    config = product["options"]["indexConfig"]  # type: ignore[index]
    assert config["vector.dimensions"] == dims
    assert config["vector.similarity_function"].lower() == "cosine"


def test_vector_size_mismatch_is_refused_with_the_fix(
    graph: neo4j.Driver, settings: Settings
) -> None:
    db, dims = settings.neo4j.database, settings.app.embedding_dimensions
    apply_schema(graph, database=db, embedding_dimensions=dims)
    with pytest.raises(SchemaError, match=f"has {dims} dimensions but KGREC_EMBEDDING_DIMENSIONS"):
        apply_schema(graph, database=db, embedding_dimensions=dims * 2)
