"""One place that turns exceptions into HTTP answers: JSON `{error, detail, fields}` with a
message a person can act on, never a stack trace."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from neo4j.exceptions import Neo4jError, ServiceUnavailable, SessionExpired

from api.serving import SnapshotNotReady
from graph.errors import GraphUnavailable
from graph.ingest.upsert import UpsertRejected

logger = logging.getLogger(__name__)


class NotFound(Exception):
    """An id in the path or body is not known; the message names it and the route's rule."""


ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
    503: "unavailable",
}


def body(status: int, detail: str, fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"error": ERROR_CODES.get(status, "error"), "detail": detail}
    if fields is not None:
        out["fields"] = fields
    return out


#: How much of a rejected value is echoed back.
ECHO_CHARS = 200


def _echo(value: Any) -> Any:
    """The rejected value as JSON can carry it: a body that is not JSON arrives as bytes, and a
    NaN or infinite number has no JSON form (either made the error answer itself fail, a 500)."""
    if isinstance(value, dict | list):
        return None  # the whole body: not useful to echo back
    if isinstance(value, bytes):
        return value[:ECHO_CHARS].decode("utf-8", errors="replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value[:ECHO_CHARS]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)[:ECHO_CHARS]


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()))
        value = error.get("input")
        reason = error.get("msg", "")
        if isinstance(value, bytes) and location == "body":
            reason = f"{reason}: send the body as JSON, with Content-Type: application/json"
        out.append({"location": location, "value": _echo(value), "reason": reason})
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _field_errors(exc)
        detail = "; ".join(f"{f['location']}: {f['reason']}" for f in fields[:10])
        return JSONResponse(status_code=422, content=body(422, detail, fields))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content=body(exc.status_code, str(exc.detail)),
            headers=exc.headers,
        )

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content=body(404, str(exc)))

    @app.exception_handler(UpsertRejected)
    async def rejected(_: Request, exc: UpsertRejected) -> JSONResponse:
        detail = f"{exc.error_total} error(s); nothing was written: the graph is unchanged."
        return JSONResponse(status_code=422, content=body(422, detail, exc.errors))

    @app.exception_handler(SnapshotNotReady)
    async def not_ready(_: Request, exc: SnapshotNotReady) -> JSONResponse:
        return JSONResponse(
            status_code=503, content=body(503, str(exc)), headers={"Retry-After": "5"}
        )

    async def graph_down(_: Request, exc: Exception) -> JSONResponse:
        logger.warning("Neo4j unavailable: %s", exc)
        return JSONResponse(
            status_code=503,
            content=body(
                503,
                f"Neo4j cannot be reached ({type(exc).__name__}); retry shortly. Nothing was "
                "changed by this request.",
            ),
            headers={"Retry-After": "5"},
        )

    for kind in (GraphUnavailable, ServiceUnavailable, SessionExpired):
        app.add_exception_handler(kind, graph_down)

    @app.exception_handler(Neo4jError)
    async def graph_error(_: Request, exc: Neo4jError) -> JSONResponse:
        logger.exception("Neo4j error")
        return JSONResponse(
            status_code=503,
            content=body(503, f"the graph refused the query ({exc.code}); retry or tell ops"),
        )
