"""The API key store against the real Neo4j: keys, hashes (never secrets), revocation, audit."""

from __future__ import annotations

import neo4j
import pytest

from graph.keys import (
    ROLE_SCOPES,
    ApiKeyError,
    KeyStore,
    Role,
    Scope,
    hash_secret,
    least_role_for,
    parse_key,
    secret_matches,
)
from graph.schema import apply_schema
from graph.settings import Settings


def test_key_format_round_trips() -> None:
    parsed = parse_key("kgr_0123456789abcdef_s3cr_et-x")
    assert parsed is not None
    assert parsed.key_id == "0123456789abcdef"
    assert parsed.secret == "s3cr_et-x"  # underscores in the secret survive
    for bad in ("", "kgr_", "kgr_0123456789abcdef_", "xyz_0123456789abcdef_s", "kgr_XYZ_s"):
        assert parse_key(bad) is None, bad
    assert secret_matches("abc", hash_secret("abc"))
    assert not secret_matches("abd", hash_secret("abc"))


def test_role_scopes_follow_the_issue() -> None:
    assert ROLE_SCOPES[Role.storefront] == {Scope.recommend, Scope.events}
    assert ROLE_SCOPES[Role.merchandiser] == {
        Scope.recommend,
        Scope.events,
        Scope.explain,
        Scope.rules,
    }
    assert ROLE_SCOPES[Role.analyst] == {Scope.cypher}
    assert ROLE_SCOPES[Role.admin] == set(Scope)
    assert least_role_for(Scope.explain) == Role.merchandiser
    assert least_role_for(Scope.cypher) == Role.analyst
    assert least_role_for(Scope.catalogue) == Role.admin


@pytest.fixture
def store(graph: neo4j.Driver, settings: Settings) -> KeyStore:
    apply_schema(
        graph,
        database=settings.neo4j.database,
        embedding_dimensions=settings.app.embedding_dimensions,
    )
    return KeyStore(graph, database=settings.neo4j.database)


@pytest.mark.integration
def test_create_stores_the_hash_and_never_the_secret(store: KeyStore, graph: neo4j.Driver) -> None:
    info, plaintext = store.create(Role.merchandiser, "  pricing team  ", actor="test:alice")
    parsed = parse_key(plaintext)
    assert parsed is not None and parsed.key_id == info.key_id
    assert len(parsed.secret) >= 43  # 32 random bytes, URL-safe base64
    assert (info.name, info.role, info.active) == ("pricing team", Role.merchandiser, True)

    # The plaintext and the secret are nowhere in the graph: not in any property of any node
    # or relationship; the hash is on the key node.
    rows = graph.execute_query(
        "MATCH (n) RETURN properties(n) AS p UNION ALL MATCH ()-[r]->() RETURN properties(r) AS p"
    ).records
    values = [str(v) for r in rows for v in r["p"].values()]
    assert values, "the graph should hold the key and its audit event"
    assert not any(parsed.secret in v or plaintext in v for v in values)
    node = graph.execute_query(
        "MATCH (k:ApiKey {key_id: $id}) RETURN properties(k) AS p", id=info.key_id
    ).records[0]["p"]
    assert node["hash"] == hash_secret(parsed.secret)
    assert set(node) == {"key_id", "name", "role", "hash", "created_at"}

    assert store.load_active() == {
        info.key_id: (hash_secret(parsed.secret), Role.merchandiser, "pricing team")
    }


@pytest.mark.integration
def test_two_keys_differ_and_list_shows_no_secrets(store: KeyStore) -> None:
    first, first_key = store.create(Role.storefront, "web shop")
    second, second_key = store.create(Role.analyst, "bi")
    assert first.key_id != second.key_id and first_key != second_key
    listed = store.list()
    assert [k.key_id for k in listed] == [first.key_id, second.key_id]
    assert [k.role for k in listed] == [Role.storefront, Role.analyst]
    assert not any(hasattr(k, "hash") or hasattr(k, "secret") for k in listed)


@pytest.mark.integration
def test_revoke_removes_the_key_from_the_active_set(store: KeyStore) -> None:
    kept, _ = store.create(Role.storefront, "kept")
    gone, _ = store.create(Role.admin, "leaked")
    revoked = store.revoke(gone.key_id, actor="test:bob", reason="leaked in a ticket")
    assert revoked.revoked_at is not None and not revoked.active
    assert set(store.load_active()) == {kept.key_id}
    assert {k.key_id: k.active for k in store.list()} == {kept.key_id: True, gone.key_id: False}
    with pytest.raises(ApiKeyError, match="already revoked"):
        store.revoke(gone.key_id)
    with pytest.raises(ApiKeyError, match="key_id: no API key 'nope'"):
        store.revoke("nope")


@pytest.mark.integration
def test_create_and_revoke_are_audited(store: KeyStore, graph: neo4j.Driver) -> None:
    info, _ = store.create(Role.analyst, "bi", actor="test:alice", reason="quarterly report")
    store.revoke(info.key_id, actor="test:bob", reason="project over")
    events = [
        dict(r["e"])
        for r in graph.execute_query(
            "MATCH (e:AuditEvent {subject_type: 'ApiKey'}) RETURN e ORDER BY e.ts"
        ).records
    ]
    assert [
        (e["action"], e["actor"], e["subject_id"], e["before"], e["after"], e["reason"])
        for e in events
    ] == [
        ("create_api_key", "test:alice", info.key_id, "none", "analyst", "quarterly report"),
        ("revoke_api_key", "test:bob", info.key_id, "analyst", "revoked", "project over"),
    ]
    assert all(e["event_id"] and e["ts"] for e in events)


@pytest.mark.integration
def test_bad_names_are_refused(store: KeyStore) -> None:
    with pytest.raises(ApiKeyError, match="name: must be 1 to 100 characters"):
        store.create(Role.storefront, "   ")
    with pytest.raises(ApiKeyError, match="got 101"):
        store.create(Role.storefront, "x" * 101)
    assert store.list() == []


@pytest.mark.integration
def test_key_ids_are_unique_in_the_database(
    store: KeyStore, graph: neo4j.Driver, settings: Settings
) -> None:
    info, _ = store.create(Role.storefront, "web shop")
    with pytest.raises(neo4j.exceptions.ConstraintError):
        graph.execute_query(
            "CREATE (:ApiKey {key_id: $id})", id=info.key_id, database_=settings.neo4j.database
        )
