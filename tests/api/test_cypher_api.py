"""Analysts' Cypher over HTTP on a real server and a real Neo4j: roles, saved queries, the row
cap, the timeout, and every kind of write or admin command refused with the graph unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import neo4j
import pytest

from graph.keys import KeyStore, Role
from graph.settings import Settings
from tests.api.test_app import api_server
from tests.api.test_cli import session_server_env
from tests.conftest import wipe
from tests.graph.test_ingest import TINY_SHOP, ingest

pytestmark = pytest.mark.integration

MAX_ROWS = 25


@dataclass
class Server:
    base: str
    keys: dict[str, str]
    driver: neo4j.Driver
    database: str

    def call(
        self, method: str, path: str, role: str | None = "analyst", json: Any = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return httpx.request(method, f"{self.base}{path}", headers=headers, json=json, timeout=30)

    def counts(self) -> tuple[int, int, int]:
        graph = self.driver.execute_query(
            "MATCH (n) WITH count(n) AS nodes OPTIONAL MATCH ()-[r]->() "
            "RETURN nodes, count(r) AS rels",
            database_=self.database,
        ).records[0]
        schema = self.driver.execute_query(
            "SHOW INDEXES YIELD name RETURN count(name) AS n", database_=self.database
        ).records[0]
        return graph["nodes"], graph["rels"], schema["n"]


@pytest.fixture(scope="module")
def server(
    neo4j_driver: neo4j.Driver, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    db = settings.neo4j.database
    wipe(neo4j_driver, db)
    ingest(neo4j_driver, settings, TINY_SHOP)
    store = KeyStore(neo4j_driver, database=db)
    keys = {role.value: store.create(role, f"test {role.value}")[1] for role in Role}
    env = session_server_env(settings)
    env["KGREC_EVENTS_DIR"] = str(tmp_path_factory.mktemp("events"))
    env["KGREC_CYPHER_TIMEOUT_S"] = "1"
    env["KGREC_CYPHER_MAX_ROWS"] = str(MAX_ROWS)
    with api_server(env) as base:
        yield Server(base, keys, neo4j_driver, db)
    wipe(neo4j_driver, db)


def test_roles(server: Server) -> None:
    assert server.call("GET", "/v1/cypher/queries", role=None).status_code == 401
    for role in ("storefront", "merchandiser"):
        answer = server.call("GET", "/v1/cypher/queries", role=role)
        assert answer.status_code == 403, answer.text
        assert "analyst" in answer.json()["detail"]
        refused = server.call("POST", "/v1/cypher/query", role=role, json={"query": "RETURN 1"})
        assert refused.status_code == 403
    for role in ("analyst", "admin"):
        answer = server.call("GET", "/v1/cypher/queries", role=role)
        assert answer.status_code == 200, answer.text
        names = {q["name"] for q in answer.json()}
        assert len(names) >= 12 and "top_copurchased_pairs" in names


def test_saved_queries_run_by_name_with_params(server: Server) -> None:
    listed = {q["name"]: q for q in server.call("GET", "/v1/cypher/queries").json()}
    assert {
        k: v for k, v in listed["top_copurchased_pairs"]["params"][0].items() if k != "description"
    } == {"name": "k", "type": "integer", "default": 10}
    for name in listed:
        answer = server.call("POST", f"/v1/cypher/queries/{name}", json={"params": {}})
        assert answer.status_code == 200, (name, answer.text)
        assert set(answer.json()) == {"columns", "rows", "row_count", "truncated", "elapsed_ms"}
    missing = server.call(
        "POST", "/v1/cypher/queries/products_missing_category_or_stock", json=None
    )
    assert missing.status_code == 200, missing.text
    promotions = server.call(
        "POST", "/v1/cypher/queries/active_promotions", json={"params": {"as_of": "2023-04-03"}}
    ).json()
    assert promotions["columns"][0] == "promotion_id"
    assert [row[0] for row in promotions["rows"]] == ["PR1"]

    bad = server.call(
        "POST", "/v1/cypher/queries/top_copurchased_pairs", json={"params": {"k": "x"}}
    )
    assert bad.status_code == 400
    assert bad.json()["detail"] == "parameter k must be an integer, got 'x'"
    unknown = server.call(
        "POST", "/v1/cypher/queries/top_copurchased_pairs", json={"params": {"z": 1}}
    )
    assert unknown.status_code == 400 and "no parameter z" in unknown.json()["detail"]
    nope = server.call("POST", "/v1/cypher/queries/no_such_query", json={})
    assert nope.status_code == 404 and "top_copurchased_pairs" in nope.json()["detail"]


def test_adhoc_reads_answer_and_are_capped(server: Server) -> None:
    answer = server.call(
        "POST",
        "/v1/cypher/query",
        json={
            "query": "MATCH (p:Product)-[:IN_CATEGORY]->(:Category {category_id: $c}) "
            "RETURN p.product_id AS id, p ORDER BY id",
            "params": {"c": "paper"},
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["columns"] == ["id", "p"]
    assert body["rows"][0][0] == "P1"
    assert body["rows"][0][1]["labels"] == ["Product"]
    assert body["rows"][0][1]["properties"]["name"] == "Copy paper A4"
    assert body["truncated"] is False

    capped = server.call(
        "POST", "/v1/cypher/query", json={"query": "UNWIND range(1, 100) AS i RETURN i"}
    )
    assert capped.json()["row_count"] == MAX_ROWS and capped.json()["truncated"] is True
    fewer = server.call(
        "POST",
        "/v1/cypher/query",
        json={"query": "UNWIND range(1, 100) AS i RETURN i", "max_rows": 3},
    ).json()
    assert fewer["rows"] == [[1], [2], [3]] and fewer["truncated"] is True
    above = server.call(
        "POST",
        "/v1/cypher/query",
        json={"query": "UNWIND range(1, 100) AS i RETURN i", "max_rows": 1000},
    ).json()
    assert above["row_count"] == MAX_ROWS  # the setting is a ceiling

    syntax = server.call("POST", "/v1/cypher/query", json={"query": "MATCH (n RETURN n"})
    assert syntax.status_code == 400 and syntax.json()["error"] == "bad_request"


def test_a_slow_query_is_stopped_at_the_timeout(server: Server) -> None:
    answer = server.call(
        "POST",
        "/v1/cypher/query",
        json={"query": "UNWIND range(1, 100000000) AS i WITH i WHERE i % 7 = 99 RETURN count(i)"},
    )
    assert answer.status_code == 504, answer.text
    assert (
        "timeout" in answer.json()["detail"] and "KGREC_CYPHER_TIMEOUT_S" in answer.json()["detail"]
    )
    assert (
        server.call("POST", "/v1/cypher/query", json={"query": "RETURN 1 AS one"}).status_code
        == 200
    )


WRITES = {
    "create": "CREATE (:Intruder {name: 'x'})",
    "merge": "MERGE (:Intruder {name: 'x'})",
    "set": "MATCH (p:Product) SET p.price = 0",
    "delete": "MATCH (p:Product {product_id: 'P1'}) DETACH DELETE p",
    "delete relationships": "MATCH ()-[r:IN_CATEGORY]->() DELETE r",
    "remove": "MATCH (p:Product) REMOVE p.name",
    "foreach": "MATCH (p:Product) WITH collect(p) AS ps FOREACH (p IN ps | SET p.x = 1)",
    "load csv": "LOAD CSV FROM 'file:///etc/passwd' AS row RETURN row",
    "create index": "CREATE INDEX intruder IF NOT EXISTS FOR (n:Intruder) ON (n.name)",
    "create constraint": "CREATE CONSTRAINT intruder IF NOT EXISTS FOR (n:Intruder) "
    "REQUIRE n.name IS UNIQUE",
    "drop constraint": "DROP CONSTRAINT product_id",
    "apoc create": "CALL apoc.create.node(['Intruder'], {name: 'x'}) YIELD node RETURN node",
    "apoc periodic": "CALL apoc.periodic.iterate('MATCH (p:Product) RETURN p', "
    "'SET p.price = 0', {})",
    "apoc nested cypher": "CALL apoc.cypher.runWrite('CREATE (:Intruder)', {})",
    "create user": "CALL dbms.security.createUser('eve', 'secret-password', false)",
    "dbms procedure": "CALL dbms.listConfig() YIELD name RETURN name",
    "show users": "SHOW USERS",
    "show databases": "SHOW DATABASES",
    "use system": "USE system MATCH (n) RETURN n",
    "in transactions": "MATCH (p:Product) CALL (p) { SET p.price = 0 } IN TRANSACTIONS OF 1 ROWS",
    "in transactions read": "UNWIND [1] AS i CALL (i) { RETURN i AS j } IN TRANSACTIONS RETURN j",
    "write hidden in a comment trick": "MATCH (p:Product) /* read only */ SET p.price = 0 // ok",
}


@pytest.mark.parametrize("query", WRITES.values(), ids=WRITES.keys())
def test_writes_schema_and_admin_are_refused_and_change_nothing(server: Server, query: str) -> None:
    before = server.counts()
    answer = server.call("POST", "/v1/cypher/query", json={"query": query})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid_request"
    assert body["detail"].startswith("refused") and "read-only" in body["detail"]
    assert server.counts() == before
    prices = server.driver.execute_query(
        "MATCH (p:Product) WHERE p.price = 0 OR p.name IS NULL RETURN count(p) AS n",
        database_=server.database,
    ).records[0]["n"]
    assert prices == 0
