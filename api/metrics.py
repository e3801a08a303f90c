"""Prometheus metrics of one API process: latency per route, list outcomes per surface and
strategy, snapshot age, events waiting for Neo4j. One registry per app (tests build several)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recommender.drift import ServedScores, top_k_affinities
from recommender.engine import PERSONAL
from recommender.rate import RateCap

if TYPE_CHECKING:
    from recommender.engine import Item
    from recommender.snapshot import ServingSnapshot

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.06, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    """Args:
    drift_scores_max_per_s: personal lists a second whose customer's affinities feed the
        served-score drift signal (0: every list; see `observe_scores`).
    """

    def __init__(self, drift_scores_max_per_s: float = 0.0) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "kgrec_request_seconds",
            "Request latency per route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.lists = Counter(
            "kgrec_recommendation_lists_total",
            "Lists served per surface and outcome (personal, fallback, empty).",
            ["surface", "outcome"],
            registry=self.registry,
        )
        self.items = Counter(
            "kgrec_recommended_items_total",
            "Items served per surface and the strategy that produced them.",
            ["surface", "strategy"],
            registry=self.registry,
        )
        self.degraded = Counter(
            "kgrec_degraded_responses_total",
            "Responses served while Neo4j could not be read (from the last snapshot; paths that "
            "needed a graph read left out).",
            registry=self.registry,
        )
        self.events = Counter(
            "kgrec_events_accepted_total",
            "Storefront events written to the durable log, per kind.",
            ["kind"],
            registry=self.registry,
        )
        self.snapshot_age = Gauge(
            "kgrec_snapshot_age_seconds",
            "Age of the serving snapshot (-1 before the first one loads).",
            registry=self.registry,
        )
        self.events_pending = Gauge(
            "kgrec_events_pending",
            "Events accepted but not yet in Neo4j.",
            registry=self.registry,
        )
        self.events_dead = Gauge(
            "kgrec_events_dead_lettered",
            "Events set aside because their product is not in the graph.",
            registry=self.registry,
        )
        # The model affinities of served personal items, for score drift (api/routes_monitoring).
        self.served_scores = ServedScores()
        self._drift_sample = RateCap(drift_scores_max_per_s)

    def watch(
        self,
        snapshot_age: Callable[[], float | None],
        events: Callable[[], Any] | None = None,
    ) -> None:
        """Gauges read at scrape time."""
        self.snapshot_age.set_function(lambda: _or(snapshot_age(), -1.0))
        if events is not None:
            self.events_pending.set_function(lambda: float(events().pending))
            self.events_dead.set_function(lambda: float(events().dead_lettered))

    def served(self, surface: str, strategies: list[str]) -> None:
        if not strategies:
            outcome = "empty"
        elif any(s in ("personal", "similar", "bought_together", "cart") for s in strategies):
            outcome = "personal"
        else:
            outcome = "fallback"
        self.lists.labels(surface, outcome).inc()
        for strategy in set(strategies):  # one label lookup per strategy, not per item
            self.items.labels(surface, strategy).inc(strategies.count(strategy))

    def observe_scores(
        self, snapshot: ServingSnapshot, surface: str, customer_id: str, items: list[Item]
    ) -> None:
        """For a personal list, keeps the model's top-k affinities (customer vector . product
        vector, bought products left out) of the customer served: the same quantity as the
        training reference of score drift, so only who is served and what the model makes of
        them can move it, not stock, rules or promotions. One product-matrix product per
        list, as the engine's own ranking does: at peak traffic a sample (at most the cap's
        lists a second, whichever come) keeps its cost bounded; PSI compares distributions, so
        a sample of the served customers measures the same thing."""
        if not any(i.strategy == PERSONAL for i in items) or not self._drift_sample.take():
            return
        row = snapshot.customer_index.get(customer_id)
        customers, products = snapshot.customer_vectors, snapshot.product_vectors
        if row is None or customers is None or products is None:
            return
        bought = snapshot.bought.get(customer_id)
        values = top_k_affinities(
            customers, products, {} if bought is None else {row: bought}, np.array([row])
        )
        self.served_scores.observe(surface, snapshot.version_id, values.tolist())


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


class LatencyMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware): times each HTTP request and
    labels it with the matched route template, so ids do not explode the label set."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(template, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )
