"""`kgrec keys create|list|revoke` as an operator runs them, against the session's Neo4j."""

from __future__ import annotations

import re

import neo4j
import pytest

from graph.keys import hash_secret, parse_key
from graph.settings import Settings
from tests.api.test_cli import run_kgrec, session_server_env

pytestmark = pytest.mark.integration

KEY = re.compile(r"^kgr_[0-9a-f]{16}_\S+$", re.MULTILINE)


@pytest.fixture
def env(graph: neo4j.Driver, settings: Settings) -> dict[str, str]:
    return session_server_env(settings)


def test_create_list_revoke(env: dict[str, str], graph: neo4j.Driver) -> None:
    created = run_kgrec("keys", "create", "--role", "merchandiser", "--name", "pricing", env=env)
    assert created.returncode == 0, created.stderr
    match = KEY.search(created.stdout)
    assert match, created.stdout
    key = match.group(0)
    parsed = parse_key(key)
    assert parsed is not None
    assert f"Created API key {parsed.key_id} ('pricing', role merchandiser" in created.stdout
    assert "only time the key is shown" in created.stderr
    stored = graph.execute_query(
        "MATCH (k:ApiKey {key_id: $id}) RETURN k.hash AS hash, k.role AS role", id=parsed.key_id
    ).records[0]
    assert (stored["hash"], stored["role"]) == (hash_secret(parsed.secret), "merchandiser")

    listed = run_kgrec("keys", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert parsed.key_id in listed.stdout and "pricing" in listed.stdout
    assert "active" in listed.stdout
    assert parsed.secret not in listed.stdout

    revoked = run_kgrec("keys", "revoke", parsed.key_id, "--reason", "test over", env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert f"Revoked API key {parsed.key_id}" in revoked.stdout
    assert parsed.key_id not in run_kgrec("keys", "list", env=env).stdout
    everything = run_kgrec("keys", "list", "--all", env=env)
    assert parsed.key_id in everything.stdout and "revoked" in everything.stdout

    again = run_kgrec("keys", "revoke", parsed.key_id, env=env)
    assert again.returncode == 1
    assert "already revoked" in again.stderr and "Traceback" not in again.stderr


def test_create_refuses_an_unknown_role(env: dict[str, str]) -> None:
    result = run_kgrec("keys", "create", "--role", "superuser", env=env)
    assert result.returncode == 2
    assert "superuser" in result.stderr
    assert "storefront" in result.stderr  # the choices are named
