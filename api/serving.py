"""The API's serving state: the engine over the current snapshot, kept fresh by a background
thread that swaps in a new snapshot when the active model or the facts change.

Requests never wait for a reload: they keep using the snapshot they started with while the next
one is built, and a failed reload (Neo4j down) keeps the last good one.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import neo4j
from neo4j.exceptions import Neo4jError, ServiceUnavailable, SessionExpired

from graph.cypher import load_cypher
from graph.settings import Settings
from recommender.engine import Engine, surface_weights
from recommender.experiments import Assignment, ExperimentRouter, ExperimentStore
from recommender.rules import RuleStore
from recommender.snapshot import ServingSnapshot, load_snapshot

logger = logging.getLogger(__name__)

GRAPH_ERRORS = (ServiceUnavailable, SessionExpired, Neo4jError, OSError)


def _settle_heap() -> None:
    """After a snapshot swap: collects the old snapshot's cycles, then moves every surviving
    object to the collector's permanent generation (`gc.freeze`). A snapshot is millions of
    long-lived objects; left in the tracked generations, each full collection walks them all,
    a pause of 100-250 ms in the middle of requests (measured on the 1M-line shop). Frozen
    objects are still freed by reference counting when the next snapshot replaces them."""
    gc.collect()
    gc.freeze()


class GraphProbe:
    """Whether Neo4j answered lately, for requests to read without I/O: a background thread
    checks connectivity every `every_s` seconds. Lists served while it is down are marked
    `degraded` (they come from the last snapshot, which cannot be refreshed)."""

    def __init__(self, driver: neo4j.Driver, every_s: float = 2.0) -> None:
        self.driver = driver
        self.every_s = every_s
        self.down = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """One connectivity check now; True when Neo4j answered."""
        try:
            self.driver.verify_connectivity()
        except GRAPH_ERRORS:
            self.down = True
            return False
        self.down = False
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kgrec-graph-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.check()
            self._stopping.wait(self.every_s)


class SnapshotNotReady(Exception):
    """No serving snapshot could be loaded yet (Neo4j unreachable since start-up)."""


class ServingState:
    """Owns the engine; `refresh()` reloads now, the thread reloads when the graph changed."""

    def __init__(
        self,
        driver: neo4j.Driver,
        settings: Settings,
        *,
        loader: Callable[[], ServingSnapshot] | None = None,
    ) -> None:
        self.driver = driver
        self.settings = settings
        self.database = settings.neo4j.database
        self.rules = RuleStore(driver, database=self.database)
        self.experiments = ExperimentRouter(ExperimentStore(driver, database=self.database))
        self._base_weights = surface_weights(settings.app.surface_weights)
        self._loader = loader or (lambda: load_snapshot(driver, database=self.database))
        self._engine: Engine | None = None
        self._fingerprint: dict[str, Any] | None = None
        self._lock = threading.Lock()  # one reload at a time
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.reloads = 0
        self.probe = GraphProbe(driver)

    @property
    def graph_down(self) -> bool:
        """Neo4j did not answer the latest connectivity check (lists are then `degraded`)."""
        return self.probe.down

    @property
    def engine(self) -> Engine:
        """Raises:
        SnapshotNotReady: nothing loaded yet.
        """
        engine = self._engine
        if engine is None:
            raise SnapshotNotReady(
                "the serving snapshot is not loaded yet: Neo4j could not be read since the API "
                f"started ({self.last_error or 'loading'}); retrying every "
                f"{self.settings.app.snapshot_refresh_s:g} s"
            )
        return engine

    @property
    def current_snapshot(self) -> ServingSnapshot | None:
        return None if self._engine is None else self._engine.snapshot

    @property
    def ready(self) -> bool:
        return self._engine is not None

    def age_s(self) -> float | None:
        engine = self._engine
        if engine is None:
            return None
        return (datetime.now(UTC) - engine.snapshot.loaded_at).total_seconds()

    # -- reloading ------------------------------------------------------------------------------
    def refresh(self, *, force: bool = True) -> bool:
        """Reloads the snapshot (and rules) if forced or the graph changed; True if swapped.

        Raises:
            neo4j errors when the graph cannot be read (the old snapshot stays).
        """
        with self._lock:
            fingerprint = self._read_fingerprint()
            if not force and self._engine is not None and fingerprint == self._fingerprint:
                self._refresh_experiments(self._engine)
                return False
            started = time.perf_counter()
            snapshot = self._loader()
            rules = self.rules.list()
            # Experiments first: their variants' vectors are ready for the new snapshot by the
            # time requests see it.
            self.experiments.refresh(snapshot)
            if self._engine is None:
                app = self.settings.app
                self._engine = Engine(
                    snapshot,
                    self.experiments.weights(self._base_weights),
                    rules=rules,
                    allow_repurchase=app.allow_repurchase,
                    repurchase_window_days=app.repurchase_window_days,
                )
            else:
                self._engine.swap(snapshot)
                self._engine.set_rules(rules)
                self._apply_weights(self._engine)
            self._fingerprint = fingerprint
            self.reloads += 1
            _settle_heap()
            self.last_error = None
            logger.info(
                "serving snapshot loaded in %.1f s: %d products, %d customers, model %s",
                time.perf_counter() - started,
                snapshot.n_products,
                len(snapshot.customer_index),
                snapshot.version_id or "none",
            )
            return True

    def _refresh_experiments(self, engine: Engine) -> None:
        self.experiments.refresh(engine.snapshot)
        self._apply_weights(engine)

    def _apply_weights(self, engine: Engine) -> None:
        weights = self.experiments.weights(self._base_weights)
        if any(engine.surfaces.get(s) != w for s, w in weights.items()):
            engine.set_weights(weights)

    def refresh_experiments(self) -> None:
        """After an experiment changed (created, stopped, promoted): this process serves by
        the new state from the next request; other processes at their next refresh turn."""
        with self._lock:
            if self._engine is not None:
                self._refresh_experiments(self._engine)

    def route(self, customer_id: str | None, surface: str) -> tuple[Engine, Assignment | None]:
        """The engine for a customer's list on a surface (a variant's while an experiment runs
        there) and the customer's assignment.

        Raises:
            SnapshotNotReady: nothing loaded yet.
        """
        return self.experiments.route(self.engine, customer_id, surface)

    def reload_rules(self) -> None:
        """After a rule change: the next request sees it."""
        self.engine.set_rules(self.rules.list())

    def _read_fingerprint(self) -> dict[str, Any]:
        # One attempt (execute_query would retry for 30 s while Neo4j is down, holding up a
        # shutdown); the thread tries again at its next turn.
        with self.driver.session(
            database=self.database, default_access_mode=neo4j.READ_ACCESS
        ) as session:
            record = session.run(load_cypher("recommender", "snapshot_fingerprint")).single()
        return dict(record) if record else {}

    def request_refresh(self) -> None:
        """Asks the thread to reload soon (after an upsert), without waiting."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kgrec-snapshot", daemon=True)
        self._thread.start()
        self.probe.start()

    def stop(self) -> None:
        self.probe.stop()
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # a daemon: a reload in progress must not hold us

    def _run(self) -> None:
        force = True
        while not self._stopping.is_set():
            try:
                self.refresh(force=force or self._engine is None)
                force = False
            except GRAPH_ERRORS as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("serving snapshot not refreshed: %s", self.last_error)
            wait = self.settings.app.snapshot_refresh_s if self._engine else 2.0
            woken = self._wake.wait(wait)
            if woken:
                self._wake.clear()
                force = True
