"""API keys with roles: `ApiKey` nodes holding only a hash of each key's secret.

A key reads `kgr_<key_id>_<secret>`. The key id is public (it names the key in lists, logs and
audit events); the secret is 256 random bits from `secrets` and is shown once, when the key is
created. Creating and revoking a key each write an `AuditEvent` of the same shape as the model
registry's (event_id, ts, actor, action, subject_type, subject_id, before, after, reason).
"""

from __future__ import annotations

import builtins
import getpass
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

import neo4j
from neo4j.exceptions import AuthError, DriverError

from graph.cypher import load_cypher
from graph.errors import GraphUnavailable, KgrecError

KEY_PREFIX = "kgr"
_KEY_ID_BYTES = 8  # 16 hex characters: ids are random, so they never collide in practice
_SECRET_BYTES = 32  # 256 bits: guessing is hopeless, which is what makes a fast hash safe
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
NAME_MAX_LENGTH = 100


class Role(StrEnum):
    """Who holds a key; each role grants the scopes in `ROLE_SCOPES`."""

    storefront = "storefront"
    merchandiser = "merchandiser"
    analyst = "analyst"
    admin = "admin"


class Scope(StrEnum):
    """What a route needs; routes ask for one scope, roles grant a set of them."""

    recommend = "recommend"  # recommendations of every surface
    events = "events"  # storefront events (view, click, add to cart, purchase)
    explain = "explain"  # explanations and why-not
    rules = "rules"  # merchandising rules
    catalogue = "catalogue"  # catalogue, stock and promotion upserts
    cypher = "cypher"  # analysts' read-only Cypher
    admin = "admin"  # models, experiments, keys, privacy erasure


_STOREFRONT = frozenset({Scope.recommend, Scope.events})

#: Scopes per role. Catalogue, stock and promotion upserts are data feeds run by operators, so
#: they need an admin key; merchandisers steer what is shown through rules instead.
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.storefront: _STOREFRONT,
    Role.merchandiser: _STOREFRONT | {Scope.explain, Scope.rules},
    Role.analyst: frozenset({Scope.cypher}),
    Role.admin: frozenset(Scope),
}


def least_role_for(scope: Scope) -> Role:
    """The first role (storefront, merchandiser, analyst, admin) that grants `scope`."""
    return next(role for role in Role if scope in ROLE_SCOPES[role])


class ApiKeyError(KgrecError):
    """A key action that cannot be done (unknown or already revoked key, bad name)."""


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as lists show it: never the secret, never the hash."""

    key_id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def from_record(cls, record: neo4j.Record) -> ApiKeyInfo:
        return cls(
            key_id=record["key_id"],
            name=record["name"],
            role=Role(record["role"]),
            created_at=_native(record["created_at"]),
            revoked_at=_native(record["revoked_at"]) if record["revoked_at"] else None,
        )


class StoredKey(NamedTuple):
    """What verification needs of an active key: the hash of its secret, its role and name."""

    hash: str
    role: Role
    name: str


class ParsedKey(NamedTuple):
    key_id: str
    secret: str


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of a key's secret.

    A plain fast hash is right here, unlike for passwords: the secret is 256 random bits, so
    there is no dictionary to try and a slow hash (scrypt, bcrypt) would buy nothing but
    latency on every request (the API checks a key per request).
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_key(presented: str) -> ParsedKey | None:
    """Splits `kgr_<key_id>_<secret>`; None when the text has another shape."""
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not _KEY_ID.match(key_id) or not secret:
        return None
    return ParsedKey(key_id, secret)


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Compares in constant time, so response times say nothing about the stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def cli_actor() -> str:
    """Who runs the command, for audit events (`cli:<user>`)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


# `KeyStore.list` shadows the builtin inside the class body, hence this alias.
_Records = list[neo4j.Record]


class KeyStore:
    """API keys in Neo4j; handed a driver, never creates one."""

    def __init__(self, driver: neo4j.Driver, *, database: str) -> None:
        self.driver = driver
        self.database = database

    def create(
        self, role: Role, name: str, *, actor: str | None = None, reason: str | None = None
    ) -> tuple[ApiKeyInfo, str]:
        """Creates a key; returns it and its plaintext, which nothing can show again.

        Raises:
            ApiKeyError: the name is empty or too long.
            GraphUnavailable: Neo4j cannot be reached.
        """
        role = Role(role)
        clean_name = name.strip()
        if not clean_name or len(clean_name) > NAME_MAX_LENGTH:
            raise ApiKeyError(
                f"name: must be 1 to {NAME_MAX_LENGTH} characters (got {len(clean_name)}); "
                "say who or what uses the key, e.g. 'web shop'"
            )
        key_id = secrets.token_hex(_KEY_ID_BYTES)
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        records = self._write(
            "keys_create",
            key_id=key_id,
            name=clean_name,
            role=role.value,
            hash=hash_secret(secret),
            now=datetime.now(UTC).isoformat(),
            event_id=uuid.uuid4().hex,
            actor=actor or cli_actor(),
            reason=reason,
        )
        return ApiKeyInfo.from_record(records[0]), f"{KEY_PREFIX}_{key_id}_{secret}"

    def list(self) -> builtins.list[ApiKeyInfo]:
        """Every key, revoked ones too, oldest first."""
        return [ApiKeyInfo.from_record(r) for r in self._read("keys_list")]

    def get(self, key_id: str) -> ApiKeyInfo:
        """One key by id.

        Raises:
            ApiKeyError: no key has this id.
        """
        records = self._read("keys_get", key_id=key_id)
        if not records:
            raise ApiKeyError(
                f"key_id: no API key {key_id!r} (`kgrec keys list` shows every key id)"
            )
        return ApiKeyInfo.from_record(records[0])

    def revoke(
        self, key_id: str, *, actor: str | None = None, reason: str | None = None
    ) -> ApiKeyInfo:
        """Revokes a key; the API refuses it from its next key refresh on.

        Raises:
            ApiKeyError: the key is unknown or already revoked.
        """
        records = self._write(
            "keys_revoke",
            key_id=key_id,
            now=datetime.now(UTC).isoformat(),
            event_id=uuid.uuid4().hex,
            actor=actor or cli_actor(),
            reason=reason,
        )
        if records:
            return ApiKeyInfo.from_record(records[0])
        existing = self.get(key_id)  # raises for an unknown key
        raise ApiKeyError(
            f"key_id: API key {key_id!r} was already revoked at "
            f"{existing.revoked_at:%Y-%m-%d %H:%M:%S} UTC; nothing changed"
        )

    def load_active(self) -> dict[str, StoredKey]:
        """Hash, role and name of every active key by key id (what the API caches)."""
        return {
            r["key_id"]: StoredKey(r["hash"], Role(r["role"]), r["name"])
            for r in self._read("keys_active")
        }

    def _read(self, query: str, **params: Any) -> _Records:
        return self._run(query, neo4j.RoutingControl.READ, params)

    def _write(self, query: str, **params: Any) -> _Records:
        return self._run(query, neo4j.RoutingControl.WRITE, params)

    def _run(self, query: str, routing: neo4j.RoutingControl, params: dict[str, Any]) -> _Records:
        try:
            result = self.driver.execute_query(
                load_cypher("graph", query), params, routing_=routing, database_=self.database
            )
        except AuthError as exc:
            raise GraphUnavailable(
                f"API keys: Neo4j refused the credentials: {exc.message}"
            ) from exc
        except (DriverError, OSError) as exc:  # ServiceUnavailable, SessionExpired, ...
            raise GraphUnavailable(f"API keys: cannot reach Neo4j: {exc}") from exc
        return list(result.records)


def _native(value: Any) -> datetime:
    native = value.to_native() if hasattr(value, "to_native") else value
    if not isinstance(native, datetime):
        raise TypeError(f"expected a datetime, got {type(native).__name__}")
    return native
