"""Drift monitoring (admin): `GET /v1/monitoring/drift` and the `kgrec_drift_*` gauges.

The active model's training reference (`drift_reference.json`, written at registration) is
compared with the shop now: the category mix of the latest `KGREC_DRIFT_WINDOW_DAYS` of orders
(one aggregation in Neo4j) and the model's top-k affinities of the customers this process
served personal lists since the model became active (`Metrics.served_scores`, in memory).
See recommender/drift.py for the signals and PSI.

A report is cached for `REPORT_CACHE_S`, so a Prometheus scrape every few seconds does not turn
into a Neo4j aggregation every few seconds; `?fresh=true` recomputes it. With several workers,
each process reports the scores it served itself (scrape each, or read the endpoint a few
times); the interaction mix is the same for all.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import neo4j
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field

from api.auth import AdminAccess
from api.metrics import Metrics
from api.routes import ERRORS
from api.serving import ServingState
from gnn.registry import DRIFT_REFERENCE, Registry, RegistryError
from graph.cypher import load_cypher
from graph.settings import Settings
from recommender.drift import (
    NO_CATEGORY,
    Comparison,
    binned,
    compare,
    score_bins,
    shares,
    worst,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/monitoring", tags=["operations"])

#: How long a computed report is served again (the endpoint's `fresh=true` skips it).
REPORT_CACHE_S = 60.0

#: Customer-facing surfaces whose served scores are always reported (others when seen).
SCORE_SURFACES = ("home", "email")


# -- bodies ------------------------------------------------------------------------------------
class DriftBinOut(BaseModel):
    bin: str = Field(description="A top-level category id, or a score interval.")
    expected: float = Field(description="Share in the training reference.")
    actual: float = Field(description="Share now.")


class DriftWindowOut(BaseModel):
    start: datetime | None
    end: datetime | None
    description: str


class DriftSignalOut(BaseModel):
    signal: str = Field(
        description="interaction_mix, or score_distribution:<surface> (home, email, cart)."
    )
    psi: float | None = Field(description="Population Stability Index; null: too little data.")
    status: str = Field(description="ok, warn, alert or insufficient_data.")
    warn: float
    alert: float
    observations: int = Field(description="Order lines, or served scores, compared.")
    window: DriftWindowOut
    reference: str = Field(description="What the shares are compared against.")
    bins: list[DriftBinOut]


class DriftOut(BaseModel):
    status: str = Field(description="The worst status of the signals.")
    model_version: str | None = Field(description="The version the serving snapshot uses.")
    computed_at: datetime
    detail: str | None = Field(description="Why signals are missing, when they are.")
    signals: list[DriftSignalOut]


# -- computing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Report:
    body: DriftOut
    at: float


class DriftMonitor:
    """Builds drift reports for the version the serving snapshot uses; thread-safe."""

    def __init__(self, state: ServingState, metrics: Metrics, settings: Settings) -> None:
        self.state = state
        self.metrics = metrics
        self.settings = settings
        self._references: dict[str, dict[str, Any] | None] = {}
        self._last: _Report | None = None
        self._lock = threading.Lock()

    def report(self, *, max_age_s: float = REPORT_CACHE_S) -> DriftOut:
        last = self._last
        if last is not None and time.monotonic() - last.at < max_age_s:
            return last.body
        with self._lock:
            body = self._compute()
            self._last = _Report(body, time.monotonic())
            return body

    def _reference(self, version_id: str) -> dict[str, Any] | None:
        if version_id not in self._references:
            registry = Registry(
                self.state.driver,
                database=self.state.database,
                root=self.settings.app.home / "models",
            )
            try:
                path = registry.get(version_id).artifacts / DRIFT_REFERENCE
            except RegistryError:
                return None
            self._references[version_id] = json.loads(path.read_text()) if path.exists() else None
        return self._references[version_id]

    def _compute(self) -> DriftOut:
        app = self.settings.app
        now = datetime.now(UTC)
        snapshot = self.state.current_snapshot
        version = snapshot.version_id if snapshot else None
        if version is None:
            return DriftOut(
                status="insufficient_data",
                model_version=None,
                computed_at=now,
                detail="no active model is being served: drift is measured against the "
                "active model's training data (`kgrec models list`)",
                signals=[],
            )
        reference = self._reference(version)
        if reference is None:
            return DriftOut(
                status="insufficient_data",
                model_version=version,
                computed_at=now,
                detail=f"{version} has no {DRIFT_REFERENCE}: it was registered before drift "
                "monitoring; train a new version (`kgrec train`) to get one",
                signals=[],
            )
        limits = {
            "warn": app.drift_psi_warn,
            "alert": app.drift_psi_alert,
            "min_observations": app.drift_min_observations,
        }
        signals = [self._mix(reference["interaction_mix"], limits)]
        scores = reference.get("score_distribution")
        if scores:
            served = self.metrics.served_scores
            for surface in sorted(set(SCORE_SURFACES) | set(served.surfaces(version))):
                signals.append(self._scores(scores, surface, version, limits))
        status = worst([s.status for s in signals])
        return DriftOut(
            status=status,
            model_version=version,
            computed_at=now,
            detail=None if scores else f"{version} has no embeddings: no score distribution",
            signals=signals,
        )

    def _mix(self, reference: dict[str, Any], limits: dict[str, Any]) -> DriftSignalOut:
        days = self.settings.app.drift_window_days
        records = self.state.driver.execute_query(
            load_cypher("recommender", "drift_mix"),
            days=days,
            database_=self.state.database,
            routing_=neo4j.RoutingControl.READ,
        ).records
        current = {(r["category"] or NO_CATEGORY): int(r["lines"]) for r in records}
        newest_ms = records[0]["newest_ms"] if records else None
        expected_counts: dict[str, float] = reference["counts"]
        bins = sorted(set(expected_counts) | set(current))
        result = compare(
            "interaction_mix",
            bins,
            shares(expected_counts, bins),
            shares({k: float(v) for k, v in current.items()}, bins),
            sum(current.values()),
            **limits,
        )
        end = _from_ms(newest_ms)
        start = None if newest_ms is None else _from_ms(int(newest_ms) - days * 86_400_000)
        ref_from, ref_to = _from_ms(reference.get("from_ms")), _from_ms(reference.get("to_ms"))
        return _signal(
            result,
            limits,
            DriftWindowOut(
                start=start,
                end=end,
                description=f"order lines of the latest {days} days of orders (to the newest)",
            ),
            f"{reference.get('interactions', 0):,} order lines the model was trained on"
            f" ({_day(ref_from)} to {_day(ref_to)}), per top-level category",
        )

    def _scores(
        self, reference: dict[str, Any], surface: str, version: str, limits: dict[str, Any]
    ) -> DriftSignalOut:
        edges = [float(e) for e in reference["edges"]]
        values = self.metrics.served_scores.values(surface, version)
        result = compare(
            f"score_distribution:{surface}",
            score_bins(edges),
            [float(x) for x in reference["shares"]],
            binned(values, edges),
            int(values.size),
            **limits,
        )
        return _signal(
            result,
            limits,
            DriftWindowOut(
                start=None,
                end=None,
                description=f"top-{reference.get('k')} affinities of the customers served "
                f"personal lists on {surface} by this API process since {version} was loaded "
                f"(the latest {self.metrics.served_scores.kept:,})",
            ),
            f"the model's top-{reference.get('k')} affinities of {reference.get('customers')} "
            "training customers, binned by their deciles",
        )


def _signal(
    result: Comparison, limits: dict[str, Any], window: DriftWindowOut, reference: str
) -> DriftSignalOut:
    return DriftSignalOut(
        signal=result.signal,
        psi=result.psi,
        status=result.status,
        warn=limits["warn"],
        alert=limits["alert"],
        observations=result.observations,
        window=window,
        reference=reference,
        bins=[
            DriftBinOut(bin=b, expected=e, actual=a)
            for b, e, a in zip(result.bins, result.expected, result.actual, strict=True)
        ],
    )


def _from_ms(ms: Any) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, UTC)


def _day(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d}"


class DriftCollector(Collector):
    """`kgrec_drift_psi{signal}` and `kgrec_drift_alert{signal}` at scrape time, from the
    (cached) report; nothing while the app has not started or the graph cannot be read."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        monitor: DriftMonitor | None = getattr(self.app.state, "drift", None)
        if monitor is None:
            serving = getattr(self.app.state, "serving", None)
            if serving is None:
                return
            monitor = drift_monitor(self.app)
        try:
            report = monitor.report()
        except Exception as exc:  # a scrape must not fail because Neo4j is down
            logger.warning("drift not computed for /metrics: %s", exc)
            return
        psi = GaugeMetricFamily(
            "kgrec_drift_psi",
            "PSI of a drift signal against the active model's training data.",
            labels=["signal"],
        )
        level = GaugeMetricFamily(
            "kgrec_drift_status",
            "Drift status of a signal: 0 ok, 1 warn, 2 alert, -1 insufficient data.",
            labels=["signal"],
        )
        codes = {"ok": 0.0, "warn": 1.0, "alert": 2.0}
        for signal in report.signals:
            if signal.psi is not None:
                psi.add_metric([signal.signal], signal.psi)
            level.add_metric([signal.signal], codes.get(signal.status, -1.0))
        yield psi
        yield level

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # collected lazily: registering must not compute a report


def drift_monitor(app: FastAPI) -> DriftMonitor:
    """The app's monitor, made on first use (it needs the serving state of the lifespan)."""
    monitor: DriftMonitor | None = getattr(app.state, "drift", None)
    if monitor is None:
        serving: ServingState = app.state.serving
        monitor = DriftMonitor(serving, app.state.metrics, serving.settings)
        app.state.drift = monitor
    return monitor


def install_monitoring(app: FastAPI) -> None:
    """The drift route and gauges (one line in `create_app`)."""
    app.include_router(router)
    metrics: Metrics = app.state.metrics
    metrics.registry.register(DriftCollector(app))


# -- routes ------------------------------------------------------------------------------------
@router.get("/drift", response_model=DriftOut, responses=ERRORS)
async def drift(
    request: Request,
    _: AdminAccess,
    fresh: Annotated[
        bool, Query(description=f"Recompute now (else a report up to {REPORT_CACHE_S:g} s old).")
    ] = False,
) -> DriftOut:
    """Drift of the interaction mix per top-level category and of the served score
    distribution against the active model's training data (PSI per signal, with the
    KGREC_DRIFT_PSI_WARN and KGREC_DRIFT_PSI_ALERT thresholds and the shares compared)."""
    monitor = drift_monitor(request.app)
    return await run_in_threadpool(monitor.report, max_age_s=0.0 if fresh else REPORT_CACHE_S)
