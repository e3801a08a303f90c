"""API keys over real HTTP: 401 without a usable key, 403 for the wrong role, 200 for the right
one; a new key works at once, a revoked one stops working, and the cache outlives Neo4j."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, get_args

import httpx
import neo4j
import pytest
import uvicorn
from fastapi import FastAPI

from api.auth import (
    AdminAccess,
    CatalogueAccess,
    CypherAccess,
    EventsAccess,
    ExplainAccess,
    KeyCache,
    KeysUnavailable,
    Principal,
    RecommendAccess,
    RulesAccess,
    Unauthenticated,
    key_cache_scope,
    require,
)
from graph.errors import GraphUnavailable
from graph.keys import ROLE_SCOPES, KeyStore, Role, Scope, StoredKey, hash_secret
from graph.settings import Settings
from tests.conftest import free_port


def _body(principal: Principal, scope: Scope) -> dict[str, str]:
    return {"scope": scope.value, "key_id": principal.key_id, "role": principal.role.value}


def build_app(
    cache: KeyCache | None = None, settings: Settings | None = None, driver: Any = None
) -> FastAPI:
    """One route per scope, guarded the way real routers are; the cache lives in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if cache is not None:
            cache.start()
            app.state.key_cache = cache
            try:
                yield
            finally:
                cache.stop()
        else:
            assert settings is not None and driver is not None
            with key_cache_scope(driver, settings) as scoped:
                app.state.key_cache = scoped
                yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/recommend")
    def recommend(principal: RecommendAccess) -> dict[str, str]:
        return _body(principal, Scope.recommend)

    @app.post("/events")
    def events(principal: EventsAccess) -> dict[str, str]:
        return _body(principal, Scope.events)

    @app.get("/explain")
    def explain(principal: ExplainAccess) -> dict[str, str]:
        return _body(principal, Scope.explain)

    @app.put("/rules")
    def rules(principal: RulesAccess) -> dict[str, str]:
        return _body(principal, Scope.rules)

    @app.put("/catalogue")
    def catalogue(principal: CatalogueAccess) -> dict[str, str]:
        return _body(principal, Scope.catalogue)

    @app.post("/cypher")
    def cypher(principal: CypherAccess) -> dict[str, str]:
        return _body(principal, Scope.cypher)

    @app.post("/admin")
    def admin(principal: AdminAccess) -> dict[str, str]:
        return _body(principal, Scope.admin)

    return app


ROUTES = {
    Scope.recommend: ("GET", "/recommend"),
    Scope.events: ("POST", "/events"),
    Scope.explain: ("GET", "/explain"),
    Scope.rules: ("PUT", "/rules"),
    Scope.catalogue: ("PUT", "/catalogue"),
    Scope.cypher: ("POST", "/cypher"),
    Scope.admin: ("POST", "/admin"),
}


@pytest.fixture
def serve() -> Iterator[Any]:
    """Runs apps on real HTTP servers (uvicorn in a thread); returns a client per app."""
    running: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []

    def start(app: FastAPI) -> httpx.Client:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        running.append((server, thread, client))
        return client

    yield start
    for server, thread, client in running:
        client.close()
        server.should_exit = True
        thread.join(timeout=20)


def call(
    client: httpx.Client, scope: Scope, key: str | None = None, **headers: str
) -> httpx.Response:
    method, path = ROUTES[scope]
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return client.request(method, path, headers=headers)


@pytest.fixture
def store(graph: neo4j.Driver, settings: Settings) -> KeyStore:
    return KeyStore(graph, database=settings.neo4j.database)


@pytest.mark.integration
def test_each_route_needs_a_key_and_the_right_role(store: KeyStore, serve: Any) -> None:
    keys = {role: store.create(role, f"{role} test")[1] for role in Role}
    client = serve(build_app(KeyCache(store, refresh_s=60)))

    assert client.get("/healthz").status_code == 200  # open routes stay open
    for scope in Scope:
        missing = call(client, scope)
        assert missing.status_code == 401, (scope, missing.text)
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "no API key" in missing.json()["detail"]
        for role, key in keys.items():
            response = call(client, scope, key)
            if scope in ROLE_SCOPES[role]:
                assert response.status_code == 200, (role, scope, response.text)
                assert response.json() == {
                    "scope": scope.value,
                    "key_id": key.split("_")[1],
                    "role": role.value,
                }
            else:
                assert response.status_code == 403, (role, scope, response.text)
                detail = response.json()["detail"]
                assert detail.startswith(f"role {role.value} may not use {scope.value}; ask for")
    explain = call(client, Scope.explain, keys[Role.storefront])
    assert explain.json()["detail"] == (
        "role storefront may not use explain; ask for a merchandiser key"
    )
    # X-API-Key is the alternative header.
    alternative = call(client, Scope.cypher, **{"X-API-Key": keys[Role.analyst]})
    assert alternative.status_code == 200


@pytest.mark.integration
def test_wrong_keys_are_401(store: KeyStore, serve: Any) -> None:
    _, key = store.create(Role.admin, "admin")
    client = serve(build_app(KeyCache(store, refresh_s=60)))
    prefix, key_id, secret = key.split("_", 2)
    wrong = {
        "malformed": "not-a-key",
        "unknown id": f"{prefix}_{'0' * 16}_{secret}",
        "wrong secret": f"{prefix}_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}",
    }
    for case, presented in wrong.items():
        response = call(client, Scope.recommend, presented)
        assert response.status_code == 401, (case, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
    assert call(client, Scope.admin, key).status_code == 200
    bare = client.post("/admin", headers={"Authorization": key})  # no "Bearer "
    assert bare.status_code == 401


@pytest.mark.integration
def test_a_new_key_works_at_once_and_a_revoked_one_stops(
    graph: neo4j.Driver, settings: Settings, store: KeyStore, serve: Any
) -> None:
    fast = Settings(
        app=settings.app.model_copy(update={"api_key_refresh_s": 0.2}), neo4j=settings.neo4j
    )
    client = serve(build_app(settings=fast, driver=graph))
    info, key = store.create(Role.storefront, "web shop")  # after the app loaded its keys
    assert call(client, Scope.recommend, key).status_code == 200
    store.revoke(info.key_id)
    deadline = time.monotonic() + 10
    while call(client, Scope.recommend, key).status_code == 200:
        assert time.monotonic() < deadline, "a revoked key still works 10 s later"
        time.sleep(0.05)
    refused = call(client, Scope.recommend, key)
    assert refused.status_code == 401
    assert "unknown or revoked" in refused.json()["detail"]


@pytest.mark.integration
def test_openapi_declares_both_schemes(store: KeyStore, serve: Any) -> None:
    client = serve(build_app(KeyCache(store, refresh_s=60)))
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["HTTPBearer"]["description"],
    }
    assert schemes["APIKeyHeader"]["in"] == "header"
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
    assert document["paths"]["/explain"]["get"]["security"] == [
        {"HTTPBearer": []},
        {"APIKeyHeader": []},
    ]
    assert "security" not in document["paths"]["/healthz"]["get"]


class FlakySource:
    """The real store, until `down` is set: then every load fails as a dead Neo4j would."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False
        self.loads = 0

    def load_active(self) -> Mapping[str, StoredKey]:
        self.loads += 1
        if self.down:
            raise GraphUnavailable("API keys: cannot reach Neo4j: connection refused")
        result: Mapping[str, StoredKey] = self.inner.load_active()
        return result


@pytest.mark.integration
def test_the_cache_keeps_working_while_neo4j_is_down(store: KeyStore) -> None:
    _, key = store.create(Role.merchandiser, "merch")
    source = FlakySource(store)
    cache = KeyCache(source, refresh_s=60, miss_refresh_interval_s=0.0)
    assert cache.refresh()
    source.down = True
    assert not cache.refresh()
    assert cache.last_error is not None and "connection refused" in cache.last_error
    assert cache.verify(key).role == Role.merchandiser  # last good copy
    # An unknown key while the graph is down is refused at once, without trying the graph.
    loads = source.loads
    with pytest.raises(Unauthenticated, match="unknown or revoked"):
        cache.verify(f"kgr_{'0' * 16}_whatever")
    assert source.loads == loads
    source.down = False
    assert cache.refresh() and cache.last_error is None


def test_a_cache_that_never_loaded_says_so(serve: Any) -> None:
    source = FlakySource(None)
    source.down = True
    cache = KeyCache(source, refresh_s=60, miss_refresh_interval_s=60)
    with pytest.raises(KeysUnavailable, match="could not be loaded from Neo4j since start-up"):
        cache.verify(f"kgr_{'0' * 16}_secret")
    client = serve(build_app(cache))
    response = call(client, Scope.recommend, f"kgr_{'0' * 16}_secret")
    assert response.status_code == 503
    assert "connection refused" in response.json()["detail"]
    assert call(client, Scope.recommend).status_code == 401  # no key is still a 401


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CountingSource:
    def __init__(self) -> None:
        self.keys: dict[str, StoredKey] = {}
        self.loads = 0

    def load_active(self) -> Mapping[str, StoredKey]:
        self.loads += 1
        return dict(self.keys)


def test_unknown_keys_reload_at_most_once_per_interval() -> None:
    source, clock = CountingSource(), Clock()
    cache = KeyCache(source, refresh_s=30, miss_refresh_interval_s=1.0, clock=clock)
    cache.refresh()
    clock.now = 0.1  # just after a periodic reload: a miss still reloads
    unknown = f"kgr_{'a' * 16}_secret"
    for _ in range(50):
        with pytest.raises(Unauthenticated):
            cache.verify(unknown)
    assert source.loads == 2  # the start-up load and one reload for the whole flood
    source.keys["b" * 16] = StoredKey(hash_secret("s3cret"), Role.analyst, "new")
    clock.now = 0.9
    with pytest.raises(Unauthenticated):  # within the interval: the new key waits a moment
        cache.verify(f"kgr_{'b' * 16}_s3cret")
    assert source.loads == 2
    clock.now = 1.1
    assert cache.verify(f"kgr_{'b' * 16}_s3cret").role == Role.analyst
    assert source.loads == 3
    assert cache.verify(f"kgr_{'b' * 16}_s3cret").name == "new"  # known: no reload
    assert source.loads == 3
    assert cache.age_s == 0.0
    clock.now = 4.0
    assert cache.age_s == pytest.approx(2.9)


def test_require_is_the_alias_shape() -> None:
    built = require(Scope.explain)
    principal_type, dependency = get_args(built)
    assert principal_type is Principal
    assert dependency.dependency.__name__ == "require_explain"
    assert get_args(ExplainAccess)[1].dependency.__name__ == "require_explain"
