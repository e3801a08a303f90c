"""The FastAPI application: one Neo4j driver per process, opened and closed in the lifespan,
with the serving state, the key cache, the durable event log and its shipper, and metrics."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from neo4j.exceptions import Neo4jError, ServiceUnavailable
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from threadpoolctl import threadpool_limits

from api import errors, routes_experiments
from api.auth import AdminAccess, key_cache_scope
from api.campaigns import Campaigns
from api.explaining import Explanations
from api.json_guard import JsonGuard
from api.metrics import LatencyMiddleware, Metrics
from api.routes import Storefront, router
from api.routes_cypher import cypher_router
from api.routes_models import router as models_router
from api.routes_monitoring import install_monitoring
from api.routes_privacy import privacy_router
from api.routes_ui import mount_ui
from api.routes_ui import router as ui_router
from api.schemas import Health, Readiness
from api.serving import ServingState
from graph.driver import open_driver, unreachable_message
from graph.errors import GraphUnavailable
from graph.settings import Settings, get_settings
from recommender.events import EventLog, EventLogBusy, EventShipper, event_log_folder
from recommender.served import ServedLog

logger = logging.getLogger(__name__)

DESCRIPTION = """Explainable, stock-aware knowledge-graph recommendations.

Every route but `/healthz` and `/readyz` needs an API key (`Authorization: Bearer kgr_...` or
`X-API-Key`), created with `kgrec keys create --role R`. Errors are JSON
`{"error", "detail", "fields"}`. See docs/api.md for a walk through each surface.
"""


MAX_WORKERS = 32


def open_process_log(base: Path) -> EventLog:
    """The event log of this API process: `base` for the first process, `base/worker-N` for
    the others when `kgrec serve --workers N` runs several (one writer per log; each log has
    its own shipping cursor, and a restarted server picks the same folders up again)."""
    try:
        return EventLog(base)
    except EventLogBusy:
        pass
    for n in range(2, MAX_WORKERS + 1):
        try:
            return EventLog(base / f"worker-{n}")
        except EventLogBusy:
            continue
    raise EventLogBusy(f"all {MAX_WORKERS} event logs under {base} are held by other processes")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Builds the app; Neo4j may be down at start: the API comes up, `/readyz` says why, and the
    serving snapshot loads as soon as the graph answers."""
    settings = settings or get_settings()
    metrics = Metrics(settings.app.drift_scores_max_per_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Requests already run concurrently: BLAS threads per numpy call would only fight them
        # (measured: 16 clients fell from 380 to 41 requests/s with OpenBLAS's own threads).
        threadpool_limits(limits=1, user_api="blas")
        async with AsyncExitStack() as stack:
            driver = open_driver(settings.neo4j, verify=False)
            stack.callback(driver.close)
            app.state.driver = driver
            app.state.key_cache = stack.enter_context(key_cache_scope(driver, settings))
            log = open_process_log(event_log_folder(settings.app))
            stack.callback(log.close)
            shipper = EventShipper(log, driver, settings.neo4j.database)
            shipper.start()
            stack.callback(shipper.stop)
            app.state.event_log = log
            app.state.shipper = shipper
            serving = ServingState(driver, settings)
            serving.start()
            stack.callback(serving.stop)
            app.state.serving = serving
            app.state.explanations = Explanations(
                driver,
                database=settings.neo4j.database,
                default_paths=settings.app.explanation_paths,
                timeout_s=settings.app.explanation_timeout_s,
                source=settings.app.explanation_source,
            )
            served = ServedLog(
                driver,
                database=settings.neo4j.database,
                sample_rate=settings.app.served_sample_rate,
                max_per_s=settings.app.served_max_per_s,
            )
            served.start()
            stack.callback(served.stop)
            app.state.served = served
            app.state.storefront = Storefront(serving, app.state.explanations, metrics, served)
            campaigns = Campaigns(settings.app.home.resolve() / "campaigns")
            stack.callback(campaigns.stop)
            app.state.campaigns = campaigns
            metrics.watch(serving.age_s, shipper.stats)
            yield

    app = FastAPI(
        title="kgrec",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.add_middleware(JsonGuard)  # bodies Neo4j cannot take: 422 before any route
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    errors.install(app)
    app.include_router(router)
    app.include_router(cypher_router)
    routes_experiments.include(app)
    app.include_router(ui_router)
    app.include_router(models_router)
    app.include_router(privacy_router)
    install_monitoring(app)
    mount_ui(app)

    @app.get("/healthz", response_model=Health, tags=["operations"])
    def healthz() -> Health:
        """The process is alive (it does not look at Neo4j)."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["operations"],
        responses={503: {"model": Readiness, "description": "Not ready, with the reason."}},
    )
    def readyz(request: Request) -> Readiness | JSONResponse:
        """Ready when Neo4j answers and the serving snapshot is loaded; `degraded` when the
        snapshot serves but Neo4j is down (no paths; events wait on disk); 503 otherwise."""
        serving: ServingState = request.app.state.serving
        shipper: EventShipper = request.app.state.shipper
        pending = shipper.stats().pending
        snapshot = serving.current_snapshot
        try:
            request.app.state.driver.verify_connectivity()
            reachable, detail = True, None
        except (ServiceUnavailable, Neo4jError, OSError) as exc:
            reachable = False
            detail = str(GraphUnavailable(unreachable_message(settings.neo4j, exc)))
        status = "ready" if reachable and snapshot else "degraded" if snapshot else "unavailable"
        if reachable and not snapshot:
            detail = f"the serving snapshot is loading ({serving.last_error or 'first load'})"
        body = Readiness(
            status=status,
            neo4j="reachable" if reachable else "unreachable",
            detail=detail,
            model_version=snapshot.version_id if snapshot else None,
            snapshot_age_s=serving.age_s(),
            events_pending=pending,
            process_id=os.getpid(),
        )
        if status == "unavailable":
            return JSONResponse(status_code=503, content=body.model_dump(mode="json"))
        return body

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def prometheus(_: AdminAccess) -> Response:
        """Prometheus metrics (needs an admin key: give the scraper one as a bearer token)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
