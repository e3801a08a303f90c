"""Paths for a served list through the explainer: storefront lists read the serving snapshot's
in-memory path index (`KGREC_EXPLANATION_SOURCE=snapshot`, the default) or make one bounded
Cypher round trip per list (`graph`); merchandiser explanations and why-not always read the
graph, and answer degraded (no paths, `degraded: true`) when Neo4j cannot be read."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import neo4j
from neo4j.exceptions import Neo4jError, ServiceUnavailable, SessionExpired
from starlette.concurrency import run_in_threadpool

from api.schemas import PathOut
from graph.errors import GraphUnavailable
from recommender.engine import Engine, Item
from recommender.explain import Explainer, PathSource

logger = logging.getLogger(__name__)

RETRY_S = 2.0  # after a failure, lists go out without paths for this long before trying again
Found = tuple[dict[str, list[PathOut]], bool]


class Explanations:
    def __init__(
        self,
        driver: neo4j.Driver,
        *,
        database: str,
        default_paths: int,
        timeout_s: float | None = None,
        source: str = "snapshot",
    ) -> None:
        if source not in ("snapshot", "graph"):
            raise ValueError(f"source: must be 'snapshot' or 'graph', got {source!r}")
        self.driver = driver
        self.database = database
        self.default_paths = default_paths
        self.timeout_s = timeout_s
        self.source = source
        self._explainers: dict[int, Explainer] = {}
        self._down_until = 0.0  # while Neo4j is known to be down, do not try for paths

    def _explainer(self, n: int) -> Explainer:
        explainer = self._explainers.get(n)
        if explainer is None:
            explainer = self._explainers[n] = Explainer(
                self.driver, database=self.database, per_item=n, timeout_s=self.timeout_s
            )
        return explainer

    def _run(self, call: Callable[[], dict[str, Any]], *, graph: bool = True) -> Found:
        """Paths from `call`; one that reads the graph (`graph`) is skipped for a while after
        Neo4j failed (the list goes out degraded); the snapshot's index is always there."""
        if graph and time.monotonic() < self._down_until:
            return {}, True
        try:
            raw = call()
        except (ServiceUnavailable, SessionExpired, GraphUnavailable, OSError, Neo4jError) as exc:
            logger.warning("paths left out for %.0f s, Neo4j unreadable: %s", RETRY_S, exc)
            self._down_until = time.monotonic() + RETRY_S
            return {}, True
        return {
            product: [PathOut.model_validate(path, from_attributes=True) for path in paths]
            for product, paths in raw.items()
        }, False

    async def storefront(
        self,
        call: Callable[[Engine, Any, Sequence[Item], int | None], Found],
        engine: Engine,
        origin: Any,
        items: Sequence[Item],
        paths: int | None,
    ) -> Found:
        """A storefront list's paths (`for_customer` or `for_anchors`): on the event loop from
        the snapshot's index (about 1.5 ms of CPU for 10 items, cheaper than a thread hand-off),
        in a worker thread when they come from the graph (a network round trip)."""
        if self._index(engine) is not None:
            return call(engine, origin, items, paths)
        return await run_in_threadpool(call, engine, origin, items, paths)

    def _index(self, engine: Engine) -> PathSource | None:
        """The snapshot's path index for storefront lists, None to read the graph."""
        return engine.snapshot.paths if self.source == "snapshot" else None

    def for_customer(
        self, engine: Engine, customer_id: str, items: Sequence[Item], paths: int | None
    ) -> Found:
        """A storefront list's paths."""
        product_ids = [i.product_id for i in items]
        return self.paths_for(engine, customer_id, product_ids, paths, self._index(engine))

    def paths_for(
        self,
        engine: Engine,
        customer_id: str,
        product_ids: list[str],
        paths: int | None,
        index: PathSource | None = None,
    ) -> Found:
        """Paths from a customer to products: from `index` when given, else from the graph
        (the merchandiser routes)."""
        n = self.default_paths if paths is None else paths
        if n == 0 or not product_ids:
            return {}, False
        return self._run(
            lambda: self._explainer(n).for_customer(
                customer_id, product_ids, agreement=engine.agreement, source=index
            ),
            graph=index is None,
        )

    def for_anchors(
        self, engine: Engine, anchors: list[str], items: Sequence[Item], paths: int | None
    ) -> Found:
        n = self.default_paths if paths is None else paths
        if n == 0 or not items:
            return {}, False
        index = self._index(engine)
        return self._run(
            lambda: self._explainer(n).for_anchors(
                anchors, [i.product_id for i in items], agreement=engine.agreement, source=index
            ),
            graph=index is None,
        )
