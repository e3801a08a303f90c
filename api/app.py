"""The FastAPI application: one Neo4j driver per process, opened and closed in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import neo4j
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from neo4j.exceptions import Neo4jError, ServiceUnavailable
from pydantic import BaseModel

from graph.driver import open_driver, unreachable_message
from graph.errors import GraphUnavailable
from graph.settings import Settings, get_settings


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    neo4j: str
    detail: str | None = None


def get_driver(request: Request) -> neo4j.Driver:
    driver: neo4j.Driver = request.app.state.driver
    return driver


DriverDep = Annotated[neo4j.Driver, Depends(get_driver)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Builds the app; the driver is opened lazily so the API starts even while Neo4j is down."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.driver = open_driver(settings.neo4j, verify=False)
        try:
            yield
        finally:
            app.state.driver.close()

    app = FastAPI(
        title="kgrec",
        version="0.1.0",
        description="Explainable, stock-aware knowledge-graph recommendations.",
        lifespan=lifespan,
    )

    @app.get("/healthz", response_model=Health, tags=["operations"])
    def healthz() -> Health:
        """The process is alive (it does not look at Neo4j)."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["operations"],
        responses={503: {"model": Readiness, "description": "Neo4j cannot be reached."}},
    )
    def readyz(driver: DriverDep) -> Readiness | JSONResponse:
        """Ready when Neo4j answers; 503 with the reason otherwise."""
        try:
            driver.verify_connectivity()
        except (ServiceUnavailable, Neo4jError, OSError) as exc:
            body = Readiness(
                status="unavailable",
                neo4j="unreachable",
                detail=str(GraphUnavailable(unreachable_message(settings.neo4j, exc))),
            )
            return JSONResponse(status_code=503, content=body.model_dump())
        return Readiness(status="ready", neo4j="reachable")

    return app
