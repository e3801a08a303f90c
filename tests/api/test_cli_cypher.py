"""`kgrec cypher list|run|query` as an analyst runs them, against the session's Neo4j."""

from __future__ import annotations

import csv
import io
import json

import neo4j
import pytest

from graph.settings import Settings
from tests.api.test_cli import run_kgrec, session_server_env
from tests.graph.test_ingest import TINY_SHOP, ingest

pytestmark = pytest.mark.integration


@pytest.fixture
def env(graph: neo4j.Driver, settings: Settings) -> dict[str, str]:
    ingest(graph, settings, TINY_SHOP)
    return session_server_env(settings)


def test_list_run_and_query(env: dict[str, str], graph: neo4j.Driver) -> None:
    listed = run_kgrec("cypher", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "top_copurchased_pairs" in listed.stdout and "k=10 (integer)" in listed.stdout

    as_json = run_kgrec(
        "cypher",
        "run",
        "active_promotions",
        "--param",
        "as_of=2023-04-03",
        "--format",
        "json",
        env=env,
    )
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["columns"][0] == "promotion_id" and body["rows"][0][0] == "PR1"
    assert body["truncated"] is False

    as_csv = run_kgrec(
        "cypher",
        "query",
        "UNWIND range(1, $n) AS i RETURN i, i * 2 AS twice",
        "--param",
        "n=5",
        "--format",
        "csv",
        "--max-rows",
        "3",
        env=env,
    )
    assert as_csv.returncode == 0, as_csv.stderr
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [
        ["i", "twice"],
        ["1", "2"],
        ["2", "4"],
        ["3", "6"],
    ]
    assert "only the first 3 rows" in as_csv.stderr

    table = run_kgrec("cypher", "run", "segment_overview", env=env)
    assert table.returncode == 0, table.stderr
    assert "Consumer" in table.stdout


def test_errors_are_one_readable_line(env: dict[str, str], graph: neo4j.Driver) -> None:
    bad = run_kgrec("cypher", "run", "top_copurchased_pairs", "--param", "k=ten", env=env)
    assert bad.returncode == 1
    assert "parameter k must be an integer, got 'ten'" in bad.stderr
    refused = run_kgrec("cypher", "query", "MATCH (p:Product) SET p.price = 0", env=env)
    assert refused.returncode == 1
    assert "refused: 'SET'" in refused.stderr and "Traceback" not in refused.stderr
    prices = graph.execute_query("MATCH (p:Product {price: 0}) RETURN count(p) AS n")
    assert prices.records[0]["n"] == 0
