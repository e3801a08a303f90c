"""A small synthetic shop served by a real API process, as the API test modules use it: the
graph loaded, kg-gnn versions registered (the first active), one key per role, the server up
and every worker ready. `Shop` is the client the tests talk to it with."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import neo4j
import pytest

from gnn.models import MODELS, FitContext
from gnn.registry import Registry
from gnn.snapshot import GraphSnapshot, export_snapshot
from graph.keys import KeyStore, Role
from graph.settings import Settings
from graph.synthetic import ShopSpec, generate_shop
from tests.api.test_app import api_server
from tests.api.test_cli import session_server_env
from tests.conftest import wipe
from tests.graph.test_ingest import ingest


class Shop:
    """The running API with its graph and keys."""

    def __init__(self, base: str, keys: dict[str, str], driver: neo4j.Driver, db: str) -> None:
        self.base = base
        self.keys = keys
        self.driver = driver
        self.db = db

    def get(self, path: str, role: str | None = "admin", **params: Any) -> httpx.Response:
        return httpx.get(self.base + path, params=params, headers=self._headers(role), timeout=30)

    def post(self, path: str, body: Any, role: str | None = "admin") -> httpx.Response:
        return httpx.post(self.base + path, json=body, headers=self._headers(role), timeout=30)

    def put(self, path: str, body: Any, role: str | None = "admin") -> httpx.Response:
        return httpx.put(self.base + path, json=body, headers=self._headers(role), timeout=30)

    def delete(self, path: str, role: str | None = "admin") -> httpx.Response:
        return httpx.delete(self.base + path, headers=self._headers(role), timeout=30)

    def _headers(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.keys[role]}"}

    def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        records = self.driver.execute_query(cypher, params, database_=self.db).records
        return [dict(r) for r in records]

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"gave up waiting for {what}"
            time.sleep(0.2)


@dataclass
class Served:
    shop: Shop
    snapshot: GraphSnapshot
    versions: list[str]  # registered version ids, in the order of `seeds`; the first is active
    env: dict[str, str]  # the server's environment (for CLI calls against the same setup)


@contextmanager
def served_shop(
    driver: neo4j.Driver,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    spec: ShopSpec,
    *,
    seeds: Sequence[int] = (0,),
    epochs: int = 2,
    metrics: Sequence[dict[str, Any]] | None = None,
    env: dict[str, str] | None = None,
    before_export: Callable[[neo4j.Driver, str], None] | None = None,
) -> Iterator[Served]:
    """Empties the graph, loads `spec`, trains one kg-gnn per seed (`epochs` epochs) and
    registers it (with `metrics[i]`), activates the first, makes a key per role and serves it
    all with `env` over the suite's settings. `before_export` may change the graph first. The
    graph is emptied again afterwards. Models go under `KGREC_HOME/models` of the server."""
    db = settings.neo4j.database
    wipe(driver, db)
    folder = tmp_path_factory.mktemp("shop")
    generate_shop(spec, folder)
    ingest(driver, settings, folder)
    if before_export is not None:
        before_export(driver, db)
    server_env = {**session_server_env(settings), **(env or {})}
    snapshot = export_snapshot(driver, database=db)
    registry = Registry(driver, database=db, root=Path(server_env["KGREC_HOME"]) / "models")
    versions = []
    for i, seed in enumerate(seeds):
        model = MODELS["kg-gnn"](epochs=epochs, dim=settings.app.embedding_dimensions)
        model.fit(snapshot, FitContext(seed=seed))
        found = metrics[i] if metrics else {}
        versions.append(
            registry.register(model, snapshot=snapshot, metrics=found, training={}).version_id
        )
    registry.activate(versions[0], margin=0.0)
    store = KeyStore(driver, database=db)
    keys = {role.value: store.create(role, f"test {role.value}")[1] for role in Role}
    with api_server(server_env) as base:
        shop = Shop(base, keys, driver, db)
        deadline = time.monotonic() + 60
        while shop.get("/readyz", role=None).json().get("status") != "ready":
            assert time.monotonic() < deadline, shop.get("/readyz", role=None).text
            time.sleep(0.3)
        yield Served(shop, snapshot, versions, server_env)
    wipe(driver, db)
