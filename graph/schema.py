"""Applies `schema.cypher` (constraints, lookup and vector indexes) idempotently."""

from __future__ import annotations

import re
from dataclasses import dataclass

import neo4j
from neo4j.exceptions import Neo4jError

from graph.cypher import load_cypher, split_statements
from graph.errors import SchemaError

#: Every node label with its key property (DESIGN.md, "The graph"); each key is unique.
NODE_KEYS: dict[str, str] = {
    "Customer": "customer_id",
    "Segment": "segment_id",
    "Region": "region_id",
    "Product": "product_id",
    "Category": "category_id",
    "Brand": "brand_id",
    "Attribute": "attribute_id",
    "Supplier": "supplier_id",
    "Order": "order_id",
    "Promotion": "promotion_id",
    "Location": "location_id",
    "Entity": "entity_id",
    "Forecast": "forecast_id",
    "ModelVersion": "version_id",
    "IngestRun": "run_id",
    "Experiment": "experiment_id",
    "AuditEvent": "event_id",
    "ApiKey": "key_id",
    "EventCursor": "name",
    "MerchandisingRule": "rule_id",
    "PipelineRun": "run_id",
}

VECTOR_INDEXES = ("product_embedding", "customer_embedding")

_INDEX_NAME = re.compile(r"^CREATE (?:\w+ )?(?:INDEX|CONSTRAINT) (\w+) IF NOT EXISTS", re.MULTILINE)


@dataclass(frozen=True)
class SchemaReport:
    """What the database holds after `apply_schema`."""

    statements: int
    constraints: list[str]
    indexes: list[str]


def apply_schema(driver: neo4j.Driver, *, database: str, embedding_dimensions: int) -> SchemaReport:
    """Creates what is missing, waits for indexes to come online, and checks vector sizes.

    Raises:
        SchemaError: a statement failed, or a vector index exists with another dimension.
    """
    statements = split_statements(load_cypher("graph", "schema"))
    params = {"embedding_dimensions": embedding_dimensions}
    for statement in statements:
        try:
            driver.execute_query(statement, params, database_=database)
        except Neo4jError as exc:
            match = _INDEX_NAME.search(statement)
            name = match.group(1) if match else statement.splitlines()[0]
            raise SchemaError(f"Could not apply schema item {name}: {exc.message}") from exc
    driver.execute_query("CALL db.awaitIndexes(300)", database_=database)
    _check_vector_dimensions(driver, database, embedding_dimensions)
    constraints = [
        r["name"]
        for r in driver.execute_query(
            "SHOW CONSTRAINTS YIELD name RETURN name ORDER BY name", database_=database
        ).records
    ]
    indexes = [
        r["name"]
        for r in driver.execute_query(
            "SHOW INDEXES YIELD name RETURN name ORDER BY name", database_=database
        ).records
    ]
    return SchemaReport(len(statements), constraints, indexes)


def _check_vector_dimensions(driver: neo4j.Driver, database: str, expected: int) -> None:
    records = driver.execute_query(
        "SHOW VECTOR INDEXES YIELD name, options WHERE name IN $names RETURN name, options",
        {"names": list(VECTOR_INDEXES)},
        database_=database,
    ).records
    for record in records:
        actual = record["options"]["indexConfig"]["vector.dimensions"]
        if actual != expected:
            raise SchemaError(
                f"Vector index {record['name']} has {actual} dimensions but "
                f"KGREC_EMBEDDING_DIMENSIONS is {expected}. Set it back to {actual}, or drop the "
                f"index (DROP INDEX {record['name']}) and apply the schema again."
            )
