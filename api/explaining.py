"""Paths for a served list: one bounded Cypher round trip per list through the explainer, and
degraded answers (no paths, `degraded: true`) when Neo4j cannot be read."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import neo4j
from neo4j.exceptions import Neo4jError, ServiceUnavailable, SessionExpired

from api.schemas import PathOut
from graph.errors import GraphUnavailable
from recommender.engine import Engine, Item
from recommender.explain import Explainer

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
    ) -> None:
        self.driver = driver
        self.database = database
        self.default_paths = default_paths
        self.timeout_s = timeout_s
        self._explainers: dict[int, Explainer] = {}
        self._down_until = 0.0  # while Neo4j is known to be down, do not try for paths

    def _explainer(self, n: int) -> Explainer:
        explainer = self._explainers.get(n)
        if explainer is None:
            explainer = self._explainers[n] = Explainer(
                self.driver, database=self.database, per_item=n, timeout_s=self.timeout_s
            )
        return explainer

    def _run(self, call: Callable[[], dict[str, Any]]) -> Found:
        if time.monotonic() < self._down_until:
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

    def for_customer(
        self, engine: Engine, customer_id: str, items: Sequence[Item], paths: int | None
    ) -> Found:
        return self.paths_for(engine, customer_id, [i.product_id for i in items], paths)

    def paths_for(
        self, engine: Engine, customer_id: str, product_ids: list[str], paths: int | None
    ) -> Found:
        n = self.default_paths if paths is None else paths
        if n == 0 or not product_ids:
            return {}, False
        return self._run(
            lambda: self._explainer(n).for_customer(
                customer_id, product_ids, agreement=engine.agreement
            )
        )

    def for_anchors(
        self, engine: Engine, anchors: list[str], items: Sequence[Item], paths: int | None
    ) -> Found:
        n = self.default_paths if paths is None else paths
        if n == 0 or not items:
            return {}, False
        return self._run(
            lambda: self._explainer(n).for_anchors(
                anchors, [i.product_id for i in items], agreement=engine.agreement
            )
        )
