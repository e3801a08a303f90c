"""API-key authentication: a cache of active key hashes, and a dependency per scope.

Keys are verified in memory: the `KeyCache` loads every active key's hash from Neo4j at start-up,
reloads them every `KGREC_API_KEY_REFRESH_S` in a background thread, and once more (rate-limited)
when a request presents a key id it does not know, so a brand-new key works at once. While Neo4j
is down it keeps serving the last copy it loaded, so requests never wait on the graph to be
authenticated. A revoked key is refused from the next reload on.

Routes declare what they need with an alias such as `ExplainAccess` (or `require(scope)`):

    @router.get("/customers/{customer_id}/why-not/{product_id}")
    def why_not(customer_id: str, product_id: str, principal: ExplainAccess) -> WhyNot: ...

No key, an unknown key or a revoked key: 401 with `WWW-Authenticate: Bearer`. A key whose role
lacks the scope: 403 naming the role, the scope and the role to ask for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import neo4j
from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from graph.errors import KgrecError
from graph.keys import (
    ROLE_SCOPES,
    KeyStore,
    Role,
    Scope,
    StoredKey,
    least_role_for,
    parse_key,
    secret_matches,
)
from graph.settings import Settings

logger = logging.getLogger(__name__)

#: A key the cache does not know reloads the keys at most this often (a flood of made-up keys
#: must not turn into a flood of queries).
MISS_REFRESH_INTERVAL_S = 1.0


class KeySource(Protocol):
    """Where the cache loads active keys from (`graph.keys.KeyStore`)."""

    def load_active(self) -> Mapping[str, StoredKey]: ...


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and name (for logs and audit events)."""

    key_id: str
    role: Role
    name: str

    def may(self, scope: Scope) -> bool:
        return scope in ROLE_SCOPES[self.role]

    @property
    def actor(self) -> str:
        """Who an audit event names: the API key (id, role, name), never the OS user."""
        return f"key:{self.key_id} ({self.role}: {self.name})"


class Unauthenticated(KgrecError):
    """No key, or a key that is malformed, unknown or revoked (HTTP 401)."""


class KeysUnavailable(KgrecError):
    """The keys were never loaded (Neo4j has been down since start-up), so none can be checked."""


class KeyCache:
    """Active key hashes in memory, refreshed in the background; verification never queries."""

    def __init__(
        self,
        source: KeySource,
        *,
        refresh_s: float,
        miss_refresh_interval_s: float = MISS_REFRESH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._refresh_s = refresh_s
        self._miss_interval_s = miss_refresh_interval_s
        self._clock = clock
        self._keys: Mapping[str, StoredKey] | None = None
        self._loaded_at: float | None = None
        self._last_miss_refresh = float("-inf")
        self._last_failed = False
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- loading ----------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Reloads the keys; on failure keeps the last good copy and returns False."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> bool:
        try:
            keys = dict(self._source.load_active())
        except Exception as exc:  # any failure: keep serving the last good copy
            self._last_failed = True
            self.last_error = str(exc)
            logger.warning("API keys not reloaded, keeping the last copy: %s", exc)
            return False
        self._keys = keys  # one reference swap: readers see the old or the new dict, whole
        self._loaded_at = self._clock()
        self._last_failed = False
        self.last_error = None
        return True

    def start(self, wait_s: float = 5.0) -> None:
        """Starts the refresh thread, whose first load this waits for up to `wait_s` seconds.

        A reachable Neo4j answers in milliseconds, so keys are loaded before the first request.
        An unreachable one would hold start-up for the driver's whole retry time (about 30 s):
        the API starts instead (a failure is logged, not raised) and keeps trying."""
        if self._thread is None:
            self._stop.clear()
            first = threading.Event()
            self._thread = threading.Thread(
                target=self._refresh_loop, args=(first,), name="kgrec-api-keys", daemon=True
            )
            self._thread.start()
            first.wait(wait_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)  # a daemon: a reload waiting on Neo4j must not hold us
            self._thread = None

    def _refresh_loop(self, first: threading.Event) -> None:
        self.refresh()
        first.set()
        while not self._stop.wait(self._refresh_s):
            self.refresh()

    @property
    def loaded(self) -> bool:
        return self._keys is not None

    @property
    def age_s(self) -> float | None:
        """Seconds since the keys were last loaded (None before the first load)."""
        return None if self._loaded_at is None else self._clock() - self._loaded_at

    # -- verifying --------------------------------------------------------------------------------
    def verify(self, presented: str | None) -> Principal:
        """The principal a presented key stands for.

        Raises:
            Unauthenticated: no key, or a malformed, unknown or revoked one.
            KeysUnavailable: the keys could not be loaded even once.
        """
        if not presented:
            raise Unauthenticated(
                "no API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        parsed = parse_key(presented.strip())
        if parsed is None:
            raise Unauthenticated("malformed API key: expected kgr_<key id>_<secret>")
        stored = self._lookup(parsed.key_id)
        if stored is None:
            raise Unauthenticated(
                f"unknown or revoked API key {parsed.key_id}; ask an admin for a key "
                "(`kgrec keys create --role ROLE`)"
            )
        if not secret_matches(parsed.secret, stored.hash):
            raise Unauthenticated(f"wrong secret for API key {parsed.key_id}")
        return Principal(parsed.key_id, stored.role, stored.name)

    def knows(self, presented: str | None) -> bool:
        """Whether verifying `presented` needs no reload (so it may run on the event loop)."""
        parsed = parse_key(presented.strip()) if presented else None
        keys = self._keys
        return parsed is None or (keys is not None and parsed.key_id in keys)

    def _lookup(self, key_id: str) -> StoredKey | None:
        keys = self._keys
        if keys is not None and key_id in keys:
            return keys[key_id]
        self._refresh_on_miss()
        keys = self._keys
        if keys is None:
            raise KeysUnavailable(
                "API keys could not be loaded from Neo4j since start-up, so no key can be "
                f"checked: {self.last_error}"
            )
        return keys.get(key_id)

    def _refresh_on_miss(self) -> None:
        """Reloads for an unknown key id, at most once per interval, and never while the last
        reload failed (the background thread retries; requests must not wait on a down graph).

        Only reloads for misses count against the interval: a key created just after a periodic
        reload must still work on its first request."""
        if self._last_failed and self._keys is not None:
            return
        with self._lock:
            now = self._clock()
            if now - self._last_miss_refresh >= self._miss_interval_s:
                self._last_miss_refresh = now
                self._refresh_locked()


@contextmanager
def key_cache_scope(driver: neo4j.Driver, settings: Settings) -> Iterator[KeyCache]:
    """A started cache over the graph's keys, stopped at the end (for the app's lifespan):

    with key_cache_scope(driver, settings) as cache:
        app.state.key_cache = cache
        yield
    """
    cache = KeyCache(
        KeyStore(driver, database=settings.neo4j.database),
        refresh_s=settings.app.api_key_refresh_s,
    )
    cache.start()
    try:
        yield cache
    finally:
        cache.stop()


# -- FastAPI ---------------------------------------------------------------------------------------
# auto_error=False: a missing header is ours to answer (401 with our message), and both schemes
# appear in the OpenAPI document as alternatives.
bearer_scheme = HTTPBearer(
    auto_error=False, description="An API key: `Authorization: Bearer kgr_<key id>_<secret>`."
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The same API key in an `X-API-Key` header."
)

_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


def get_key_cache(request: Request) -> KeyCache:
    """The app's cache (`app.state.key_cache`, set in the lifespan)."""
    cache = getattr(request.app.state, "key_cache", None)
    if not isinstance(cache, KeyCache):
        raise RuntimeError(
            "app.state.key_cache is not set: open one with api.auth.key_cache_scope in the "
            "app's lifespan"
        )
    return cache


async def authenticate(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None,
    api_key: str | None,
) -> Principal:
    """The caller's principal from either header; 401 (or 503 before any key loaded).

    A known key is checked on the event loop (microseconds); an unknown one may reload the keys
    from Neo4j, which happens in a worker thread so the loop never waits on the graph."""
    presented = bearer.credentials if bearer is not None else api_key
    cache = get_key_cache(request)
    try:
        if cache.knows(presented):
            return cache.verify(presented)
        return await run_in_threadpool(cache.verify, presented)
    except Unauthenticated as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail=str(exc), headers=_UNAUTHORIZED_HEADERS
        ) from exc
    except KeysUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc), headers={"Retry-After": "5"}
        ) from exc


def scope_dependency(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and requires `scope` of their role (403)."""

    # The two header schemes are its own parameters (they document the API's security): one
    # dependency level less on every request than a separate `authenticate` dependency.
    async def require_scope(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        api_key: Annotated[str | None, Depends(api_key_scheme)],
    ) -> Principal:
        principal = await authenticate(request, bearer, api_key)
        if not principal.may(scope):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role {principal.role} may not use {scope}; ask for a "
                f"{least_role_for(scope)} key",
            )
        return principal

    require_scope.__name__ = f"require_{scope.value}"
    return require_scope


def require(scope: Scope) -> Any:
    """`Annotated[Principal, Depends(...)]` for `scope`, for parameters built at run time;
    the aliases below are the same, spelled so that mypy can check them."""
    return Annotated[Principal, Depends(scope_dependency(scope))]


RecommendAccess = Annotated[Principal, Depends(scope_dependency(Scope.recommend))]
EventsAccess = Annotated[Principal, Depends(scope_dependency(Scope.events))]
ExplainAccess = Annotated[Principal, Depends(scope_dependency(Scope.explain))]
RulesAccess = Annotated[Principal, Depends(scope_dependency(Scope.rules))]
CatalogueAccess = Annotated[Principal, Depends(scope_dependency(Scope.catalogue))]
CypherAccess = Annotated[Principal, Depends(scope_dependency(Scope.cypher))]
AdminAccess = Annotated[Principal, Depends(scope_dependency(Scope.admin))]
