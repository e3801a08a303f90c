"""Opening the driver: a clear error, naming the URI and what to do, when the server is unusable."""

from __future__ import annotations

import neo4j
import pytest

from graph.driver import open_driver
from graph.errors import GraphUnavailable
from graph.settings import Neo4jSettings, Settings
from tests.conftest import free_port


def test_unreachable_local_server_says_how_to_start_it() -> None:
    port = free_port()
    settings = Neo4jSettings(uri=f"bolt://127.0.0.1:{port}", connection_timeout_s=2)
    with pytest.raises(GraphUnavailable) as raised:
        open_driver(settings)
    message = str(raised.value)
    assert f"bolt://127.0.0.1:{port}" in message
    assert "kgrec neo4j start" in message


def test_unreachable_external_server_says_to_check_the_uri() -> None:
    port = free_port()
    settings = Neo4jSettings(uri=f"bolt://127.0.0.1:{port}", managed="no", connection_timeout_s=2)
    with pytest.raises(GraphUnavailable) as raised:
        open_driver(settings)
    message = str(raised.value)
    assert f"Cannot reach Neo4j at bolt://127.0.0.1:{port}" in message
    assert "correct NEO4J_URI" in message
    assert "kgrec neo4j start" not in message


@pytest.mark.integration
def test_driver_reaches_the_session_server(neo4j_driver: neo4j.Driver, settings: Settings) -> None:
    records = neo4j_driver.execute_query(
        "CALL dbms.components() YIELD versions, edition RETURN versions[0] AS version, edition",
        database_=settings.neo4j.database,
    ).records
    assert records[0]["version"].startswith("5.26")
