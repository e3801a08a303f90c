"""Shared fixtures. The session-scoped Neo4j is real: the one NEO4J_URI names, else a local one
that the suite starts itself (its own home and port, so the demo's graph is never touched)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import neo4j
import pytest

from graph.driver import open_driver
from graph.local import LocalNeo4j
from graph.schema import VECTOR_INDEXES
from graph.settings import AppSettings, Environment, Neo4jSettings, Settings, load_settings

REPOSITORY = Path(__file__).resolve().parent.parent
# Own home and port per checkout or helper: KGREC_TEST_HOME and KGREC_TEST_NEO4J_PORT.
TEST_HOME = Path(os.environ.get("KGREC_TEST_HOME", REPOSITORY / ".kgrec" / "test")).resolve()
TEST_NEO4J_PORT = int(os.environ.get("KGREC_TEST_NEO4J_PORT", "7697"))


def free_port() -> int:
    """A loopback TCP port nobody listens on (for 'unreachable server' cases and test servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def require_tool(name: str) -> str:
    """Path of a command-line tool; a skip locally, a failure in CI (KGREC_REQUIRE_ALL_TOOLS)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/install-system-deps.sh installs it)"
        if os.environ.get("KGREC_REQUIRE_ALL_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_cache(path: Path) -> Path:
    """A file `make datasets` fetches; a skip locally, a failure in CI (KGREC_REQUIRE_ALL_TOOLS)."""
    if not path.exists():
        message = f"{path} is missing: run `make datasets` (needs npm and apt-get)"
        if os.environ.get("KGREC_REQUIRE_ALL_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def settings() -> Settings:
    if os.environ.get("NEO4J_URI"):
        # An existing server: the suite empties its database, so it must be asked for explicitly.
        if os.environ.get("KGREC_TEST_ALLOW_WIPE") != "yes":
            pytest.exit(
                "NEO4J_URI is set: the tests would empty that database. "
                "Set KGREC_TEST_ALLOW_WIPE=yes to confirm, or unset NEO4J_URI.",
                returncode=2,
            )
        return load_settings(app=AppSettings(environment=Environment.test))
    return load_settings(
        app=AppSettings(environment=Environment.test, home=TEST_HOME),
        neo4j=Neo4jSettings(
            uri=f"bolt://127.0.0.1:{TEST_NEO4J_PORT}",
            auth_enabled=False,
            managed="yes",
            home=TEST_HOME / "neo4j",
            heap="1g",
            pagecache="512m",
        ),
    )


@pytest.fixture(scope="session")
def neo4j_driver(settings: Settings) -> Iterator[neo4j.Driver]:
    """A driver to the session's Neo4j; a server the suite started is stopped at the end."""
    local = None
    if settings.neo4j.is_managed_locally:
        local = LocalNeo4j(settings.neo4j, settings.neo4j.local_home(settings.app.home))
        started = not local.start().already_running
    driver = open_driver(settings.neo4j)
    _drop_stale_vector_indexes(driver, settings)
    try:
        yield driver
    finally:
        driver.close()
        if local is not None and started:
            local.stop()


def _drop_stale_vector_indexes(driver: neo4j.Driver, settings: Settings) -> None:
    """A test home kept from before a change of KGREC_EMBEDDING_DIMENSIONS holds vector indexes
    of the old size, which the schema refuses; the suite's database holds nothing worth keeping,
    so they are dropped and the tests recreate them."""
    records = driver.execute_query(
        "SHOW VECTOR INDEXES YIELD name, options WHERE name IN $names RETURN name, options",
        {"names": list(VECTOR_INDEXES)},
        database_=settings.neo4j.database,
    ).records
    for record in records:
        size = record["options"]["indexConfig"]["vector.dimensions"]
        if size != settings.app.embedding_dimensions:
            # The name comes from the allow-list VECTOR_INDEXES: an index name cannot be a
            # parameter.
            driver.execute_query(f"DROP INDEX {record['name']}", database_=settings.neo4j.database)


def wipe(driver: neo4j.Driver, database: str) -> None:
    # CALL ... IN TRANSACTIONS needs an auto-commit transaction, hence session.run.
    with driver.session(database=database) as session:
        session.run(
            "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
        ).consume()


@pytest.fixture
def graph(neo4j_driver: neo4j.Driver, settings: Settings) -> Iterator[neo4j.Driver]:
    """The session's driver over an empty database, emptied again afterwards."""
    wipe(neo4j_driver, settings.neo4j.database)
    yield neo4j_driver
    wipe(neo4j_driver, settings.neo4j.database)
