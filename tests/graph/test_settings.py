"""Settings: safe defaults per environment, and when kgrec manages the server itself."""

from __future__ import annotations

import pytest

from graph.errors import ConfigurationError
from graph.settings import (
    DEVELOPMENT_PASSWORD,
    AppSettings,
    Environment,
    Neo4jSettings,
    load_settings,
)


def test_development_accepts_the_default_password() -> None:
    settings = load_settings(
        app=AppSettings(environment=Environment.development), neo4j=Neo4jSettings()
    )
    assert settings.neo4j.password.get_secret_value() == DEVELOPMENT_PASSWORD


def test_production_refuses_the_default_password() -> None:
    with pytest.raises(ConfigurationError, match="NEO4J_PASSWORD is the development default"):
        load_settings(app=AppSettings(environment=Environment.production), neo4j=Neo4jSettings())


def test_production_accepts_its_own_password() -> None:
    settings = load_settings(
        app=AppSettings(environment=Environment.production),
        neo4j=Neo4jSettings(password="a-long-and-private-one"),
    )
    assert settings.app.environment is Environment.production


@pytest.mark.parametrize("environment", [Environment.development, Environment.production])
def test_auth_may_be_off_only_in_tests(environment: Environment) -> None:
    with pytest.raises(ConfigurationError, match="NEO4J_AUTH_ENABLED=false is allowed only"):
        load_settings(
            app=AppSettings(environment=environment),
            neo4j=Neo4jSettings(auth_enabled=False, password="not-the-default"),
        )
    settings = load_settings(
        app=AppSettings(environment=Environment.test), neo4j=Neo4jSettings(auth_enabled=False)
    )
    assert not settings.neo4j.auth_enabled


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEO4J_URI", "neo4j+s://abc123.databases.neo4j.io")
    monkeypatch.setenv("NEO4J_HEAP", "4G")
    monkeypatch.setenv("KGREC_EMBEDDING_DIMENSIONS", "128")
    neo4j = Neo4jSettings()
    assert neo4j.host == "abc123.databases.neo4j.io"
    assert neo4j.heap == "4g"
    assert AppSettings().embedding_dimensions == 128


@pytest.mark.parametrize(
    ("uri", "managed", "expected"),
    [
        ("bolt://127.0.0.1:7687", "auto", True),
        ("neo4j://localhost:7700", "auto", True),
        ("bolt://neo4j:7687", "auto", False),  # the docker-compose service
        ("neo4j+s://abc123.databases.neo4j.io", "auto", False),  # Aura
        ("bolt://127.0.0.1:7687", "no", False),  # a Docker container published on loopback
        ("bolt://db.internal:7687", "yes", True),
    ],
)
def test_managed_locally(uri: str, managed: str, expected: bool) -> None:
    assert Neo4jSettings(uri=uri, managed=managed).is_managed_locally is expected


def test_port_comes_from_the_uri() -> None:
    assert Neo4jSettings(uri="bolt://127.0.0.1:7699").port == 7699
    assert Neo4jSettings(uri="bolt://127.0.0.1").port == 7687


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("uri", "http://127.0.0.1:7474", "is not a Bolt URI"),
        ("heap", "lots", "is not a memory size"),
        ("pagecache", "2 GB", "is not a memory size"),
    ],
)
def test_bad_values_are_named(field: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Neo4jSettings(**{field: value})
