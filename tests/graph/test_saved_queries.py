"""Analysts' saved queries and the read-only runner: headers, parameters, refusals, and every
saved query run on a real Neo4j, empty and loaded."""

from __future__ import annotations

from pathlib import Path

import neo4j
import pytest

from graph.saved_queries import (
    QueryInvalid,
    QueryParam,
    QueryRefused,
    QueryTimedOut,
    SavedQueryMalformed,
    SavedQueryNotFound,
    check_text,
    coerce,
    get_saved_query,
    list_saved_queries,
    parse_param_assignments,
    parse_saved_query,
    run_adhoc,
    run_saved,
)
from graph.settings import Settings
from tests.graph.test_ingest import TINY_SHOP, ingest

GOOD = """// name: {name}
// description: Products by name,
//    continued on a second line.
// param: k = 5 (integer) - how many
// param: prefix = 'P' (string) - id prefix
// example: kgrec cypher run {name} --param k=2
MATCH (p:Product) WHERE p.product_id STARTS WITH $prefix
RETURN p.product_id AS id ORDER BY id LIMIT $k
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.cypher"
    path.write_text(text.format(name=name), encoding="utf-8")
    return path


# -- headers --------------------------------------------------------------------------------------
def test_every_saved_query_parses_with_a_full_header() -> None:
    queries = list_saved_queries()
    assert len(queries) >= 12
    for query in queries:
        assert query.description and query.example.startswith(f"kgrec cypher run {query.name}")
        check_text(query.text)  # saved queries pass the same read-only check as ad-hoc ones
        for param in query.params:
            assert param.help, f"{query.name}: param {param.name} says nothing about itself"


def test_a_good_header_parses(tmp_path: Path) -> None:
    query = parse_saved_query(write(tmp_path, "by_name", GOOD))
    assert query.name == "by_name"
    assert query.description == "Products by name, continued on a second line."
    assert [(p.name, p.type, p.default) for p in query.params] == [
        ("k", "integer", 5),
        ("prefix", "string", "P"),
    ]
    assert query.text.startswith("MATCH (p:Product)")
    assert query.resolve({"k": "2"}) == {"k": 2, "prefix": "P"}


@pytest.mark.parametrize(
    ("broken", "line", "reason"),
    [
        (GOOD.replace("// param: k = 5 (integer)", "// param: k = five (integer)"), 4, "k"),
        (GOOD.replace("(integer)", "(number)"), 4, "type 'number'"),
        (GOOD.replace("// example:", "// sample:"), 6, "unknown header key 'sample'"),
        (GOOD.replace("// description: Products", "//description Products"), 2, "key: value"),
        (GOOD.replace("// param: k = 5 (integer) - how many\n", ""), 1, "undeclared parameter"),
        (GOOD.replace("LIMIT $k", "LIMIT 3"), 1, "not used"),
        (GOOD.replace("// name: {name}", "// name: other"), 1, "must be the file name"),
        (GOOD.split("MATCH")[0], 6, "no query"),
    ],
)
def test_a_malformed_header_names_file_line_and_reason(
    tmp_path: Path, broken: str, line: int, reason: str
) -> None:
    path = write(tmp_path, "broken", broken)
    with pytest.raises(SavedQueryMalformed) as caught:
        parse_saved_query(path)
    assert f"{path}:{line}:" in str(caught.value)
    assert reason in str(caught.value)


def test_an_unknown_name_lists_the_saved_queries() -> None:
    with pytest.raises(SavedQueryNotFound, match="top_copurchased_pairs"):
        get_saved_query("no_such_query")
    with pytest.raises(SavedQueryNotFound):
        get_saved_query("../graph/schema")


# -- parameters -----------------------------------------------------------------------------------
def test_params_coerce_by_declared_type() -> None:
    assert coerce(QueryParam("k", "integer", 1), "12") == 12
    assert coerce(QueryParam("x", "float", 1.0), "0.25") == 0.25
    assert coerce(QueryParam("b", "boolean", True), "no") is False
    assert coerce(QueryParam("ids", "string_list", []), "a, b,") == ["a", "b"]
    assert coerce(QueryParam("s", "string", ""), 7) == "7"
    with pytest.raises(QueryInvalid, match="parameter k must be an integer, got 'ten'"):
        coerce(QueryParam("k", "integer", 1), "ten")
    with pytest.raises(QueryInvalid, match="parameter b must be a boolean"):
        coerce(QueryParam("b", "boolean", True), "maybe")
    with pytest.raises(QueryInvalid, match="parameter k"):
        coerce(QueryParam("k", "integer", 1), 2.5)


def test_unknown_params_and_bad_assignments_are_named() -> None:
    query = get_saved_query("top_copurchased_pairs")
    with pytest.raises(QueryInvalid, match="no parameter kk; its parameters: k, min_orders"):
        query.resolve({"kk": "1"})
    assert parse_param_assignments(["k=5", "as_of=2023-01-01"]) == {"k": "5", "as_of": "2023-01-01"}
    with pytest.raises(QueryInvalid, match="'k5'"):
        parse_param_assignments(["k5"])


# -- the text check (the server's READ mode is tested below and in tests/api) ---------------------
@pytest.mark.parametrize(
    "text",
    [
        "CREATE (n:X) RETURN n",
        "MATCH (n) SET n.x = 1",
        "MATCH (n) DETACH DELETE n",
        "MATCH (n) REMOVE n.x",
        "MERGE (n:X {id: 1})",
        "LOAD CSV FROM 'file:///etc/passwd' AS row RETURN row",
        "CREATE INDEX x IF NOT EXISTS FOR (n:X) ON (n.x)",
        "DROP CONSTRAINT product_id",
        "CALL apoc.create.node(['X'], {}) YIELD node RETURN node",
        "CALL apoc.periodic.iterate('MATCH (n) RETURN n', 'DELETE n', {})",
        "CALL dbms.security.createUser('eve', 'pw', false)",
        "CALL dbms.components()",
        "SHOW USERS",
        "SHOW DATABASES",
        "USE system SHOW USERS",
        "MATCH (n) CALL (n) { DELETE n } IN TRANSACTIONS OF 10 ROWS",
        "RETURN apoc.cypher.runFirstColumnSingle('CREATE (n) RETURN n', {})",
        "match (n) /* harmless? */ `SET` n.x = 1",
    ],
)
def test_writes_and_admin_are_refused_by_text(text: str) -> None:
    with pytest.raises(QueryRefused, match=r"refused: .*read-only"):
        check_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "MATCH (p:Product) WHERE p.name CONTAINS 'SET' RETURN p.created_at, p.set",
        "// CREATE nothing\nMATCH (n) RETURN count(n)",
        "MATCH (tx:Order) RETURN tx.ts",
        "RETURN apoc.text.join(['a', 'b'], ',') AS joined",
    ],
)
def test_reads_pass_the_text_check(text: str) -> None:
    check_text(text)


# -- a real Neo4j ---------------------------------------------------------------------------------
def counts(driver: neo4j.Driver, database: str) -> tuple[int, int]:
    record = driver.execute_query(
        "MATCH (n) WITH count(n) AS nodes OPTIONAL MATCH ()-[r]->() RETURN nodes, count(r) AS rels",
        database_=database,
    ).records[0]
    return record["nodes"], record["rels"]


@pytest.mark.integration
def test_every_saved_query_runs_on_an_empty_graph(graph: neo4j.Driver, settings: Settings) -> None:
    for query in list_saved_queries():
        result = run_saved(
            graph, query.name, {}, database=settings.neo4j.database, timeout_s=30, max_rows=100
        )
        assert result.rows == [], query.name
        assert result.columns, query.name


@pytest.fixture
def tiny_shop(graph: neo4j.Driver, settings: Settings) -> neo4j.Driver:
    ingest(graph, settings, TINY_SHOP)
    # What other jobs write: a current forecast at risk, a served list, a product without
    # category or stock, an audit event.
    graph.execute_query(
        """
        MATCH (p:Product {product_id: 'P1'}), (c:Customer {customer_id: 'C1'})
        CREATE (p)-[:HAS_FORECAST]->(:Forecast {forecast_id: 'f1', product_id: 'P1',
          location_id: 'W1', current: true, on_hand: 3, lead_time_days: 7, days_of_cover: 2.5,
          stockout_probability: 0.9})
        CREATE (c)-[:WAS_RECOMMENDED {ts: datetime('2023-04-02T10:00:00Z'), rank: 1,
          model_version: 'v1', strategy: 'personal', surface: 'home',
          path_types: ['PURCHASED-IN_CATEGORY']}]->(p)
        CREATE (:Product {product_id: 'P_ORPHAN', name: 'Orphan', active: true})
        CREATE (:AuditEvent {event_id: 'e1', ts: datetime('2023-04-02T10:00:00Z'),
          actor: 'admin', action: 'activate', subject_type: 'ModelVersion', subject_id: 'v1'})
        """,
        database_=settings.neo4j.database,
    )
    return graph


@pytest.mark.integration
def test_every_saved_query_runs_on_a_loaded_shop(
    tiny_shop: neo4j.Driver, settings: Settings
) -> None:
    db = settings.neo4j.database
    before = counts(tiny_shop, db)
    results = {}
    for query in list_saved_queries():
        params = {"as_of": "2023-04-03"} if query.param("as_of") else {}
        results[query.name] = run_saved(
            tiny_shop, query.name, params, database=db, timeout_s=30, max_rows=1000
        )
    assert counts(tiny_shop, db) == before

    def column(name: str, col: str) -> list[object]:
        result = results[name]
        return [row[result.columns.index(col)] for row in result.rows]

    assert "P1" in column("stockout_risk_on_promotion", "product_id")
    assert "P_ORPHAN" in column("products_missing_category_or_stock", "product_id")
    assert "P1" in column("low_days_of_cover", "product_id")
    assert "PURCHASED-IN_CATEGORY" in column("explanation_path_types", "path_type")
    assert "v1" in column("recent_audit_events", "subject_id")
    assert "PR1" in column("active_promotions", "promotion_id")
    assert results["segment_overview"].rows


@pytest.mark.integration
def test_adhoc_reads_are_capped_and_writes_refused_by_neo4j_too(
    graph: neo4j.Driver, settings: Settings
) -> None:
    db = settings.neo4j.database
    capped = run_adhoc(
        graph, "UNWIND range(1, 50) AS i RETURN i", database=db, timeout_s=10, max_rows=7
    )
    assert (capped.columns, capped.row_count, capped.truncated) == (["i"], 7, True)
    assert capped.rows[0] == [1]
    odd = run_adhoc(
        graph,
        "RETURN 0.0 / 0.0 AS nan, date('2024-01-02') AS day, duration({days: 2}) AS span",
        database=db,
        timeout_s=10,
        max_rows=7,
    )
    assert odd.rows == [["nan", "2024-01-02", "P2D"]]  # JSON-ready
    whole = run_adhoc(
        graph, "UNWIND range(1, $n) AS i RETURN i", {"n": 7}, database=db, timeout_s=10, max_rows=7
    )
    assert (whole.row_count, whole.truncated) == (7, False)
    # Past the text check (check=False) the READ transaction itself refuses the write.
    from graph.saved_queries import run_read

    with pytest.raises(QueryRefused, match="refused by Neo4j"):
        run_read(graph, "CREATE (:X)", {}, database=db, timeout_s=10, max_rows=10, check=False)
    assert counts(graph, db) == (0, 0)
    with pytest.raises(QueryInvalid, match=r"SyntaxError|Invalid input"):
        run_adhoc(graph, "MATCH (n RETURN n", database=db, timeout_s=10, max_rows=10)
    with pytest.raises(QueryTimedOut, match="timeout"):
        run_adhoc(
            graph,
            "UNWIND range(1, 100000000) AS i WITH i WHERE i % 7 = 99 RETURN count(i)",
            database=db,
            timeout_s=1,
            max_rows=10,
        )
