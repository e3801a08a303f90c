"""Analysts' read-only Cypher over HTTP: saved queries by name and ad-hoc queries, with a
timeout and a row cap. Every route needs the `cypher` scope (analyst or admin keys).

Answers are `{columns, rows, row_count, truncated, elapsed_ms}`. A query that would write, read
files or administer the server is refused with 422 and nothing runs; a syntax error or a bad
parameter is 400; a query past `KGREC_CYPHER_TIMEOUT_S` is stopped and answered 504.
"""

from __future__ import annotations

from typing import Annotated, Any

import neo4j
from fastapi import APIRouter, Body, HTTPException, Path, Request, status
from pydantic import BaseModel, Field

from api.auth import CypherAccess
from graph.errors import KgrecError
from graph.saved_queries import (
    QueryInvalid,
    QueryRefused,
    QueryResult,
    QueryTimedOut,
    SavedQueryNotFound,
    list_saved_queries,
    run_adhoc,
    run_saved,
)
from graph.settings import Settings, get_settings

cypher_router = APIRouter(prefix="/v1/cypher", tags=["cypher"])


class ParamOut(BaseModel):
    name: str
    type: str
    default: Any
    description: str


class SavedQueryOut(BaseModel):
    """A saved query's header (the Cypher itself is in `cypher/<name>.cypher`)."""

    name: str
    description: str
    params: list[ParamOut]
    example: str


class SavedQueryRun(BaseModel):
    params: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the declared defaults, coerced by type."
    )
    max_rows: int | None = Field(
        None, ge=1, description="Rows at most; never above KGREC_CYPHER_MAX_ROWS."
    )


class AdhocQuery(BaseModel):
    query: str = Field(min_length=1, max_length=20_000, description="Read-only Cypher.")
    params: dict[str, Any] = Field(default_factory=dict, description="Its $parameters.")
    max_rows: int | None = Field(
        None, ge=1, description="Rows at most; never above KGREC_CYPHER_MAX_ROWS."
    )


class QueryAnswer(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="True when more rows existed than the cap let through.")
    elapsed_ms: float


def _settings(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


def _answer(result: QueryResult) -> QueryAnswer:
    return QueryAnswer(
        columns=result.columns,
        rows=result.rows,
        row_count=result.row_count,
        truncated=result.truncated,
        elapsed_ms=result.elapsed_ms,
    )


def _http_error(exc: KgrecError) -> HTTPException:
    if isinstance(exc, QueryRefused):
        return HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(exc))
    if isinstance(exc, QueryTimedOut):
        return HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            detail=f"{exc}; narrow the query (LIMIT, a date window) or ask an operator to raise "
            "KGREC_CYPHER_TIMEOUT_S",
        )
    if isinstance(exc, SavedQueryNotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc))
    if isinstance(exc, QueryInvalid):
        return HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc))
    raise exc


def _limits(request: Request, max_rows: int | None) -> dict[str, Any]:
    settings = _settings(request)
    cap = settings.app.cypher_max_rows
    return {
        "database": settings.neo4j.database,
        "timeout_s": settings.app.cypher_timeout_s,
        "max_rows": min(max_rows or cap, cap),
    }


@cypher_router.get("/queries", response_model=list[SavedQueryOut])
def saved_queries(principal: CypherAccess) -> list[SavedQueryOut]:
    """The saved queries (`cypher/`), with their parameters and defaults."""
    return [
        SavedQueryOut(
            name=q.name,
            description=q.description,
            params=[
                ParamOut(name=p.name, type=p.type, default=p.default, description=p.help)
                for p in q.params
            ],
            example=q.example,
        )
        for q in list_saved_queries()
    ]


@cypher_router.post(
    "/queries/{name}",
    response_model=QueryAnswer,
    responses={400: {}, 404: {}, 504: {}},
)
def run_saved_query(
    request: Request,
    principal: CypherAccess,
    name: Annotated[str, Path(description="A saved query's name (GET /v1/cypher/queries).")],
    body: Annotated[SavedQueryRun | None, Body(examples=[{"params": {"k": 5}}])] = None,
) -> QueryAnswer:
    """Run a saved query by name in a read-only transaction."""
    body = body or SavedQueryRun()
    driver: neo4j.Driver = request.app.state.driver
    try:
        result = run_saved(driver, name, body.params, **_limits(request, body.max_rows))
    except KgrecError as exc:
        raise _http_error(exc) from exc
    return _answer(result)


@cypher_router.post(
    "/query",
    response_model=QueryAnswer,
    responses={
        400: {},
        422: {"description": "Refused: the query would write or administer."},
        504: {},
    },
)
def run_adhoc_query(
    request: Request,
    principal: CypherAccess,
    body: Annotated[
        AdhocQuery,
        Body(
            examples=[
                {
                    "query": "MATCH (p:Product)-[:IN_CATEGORY]->(c:Category {category_id: $c}) "
                    "RETURN p.product_id, p.name LIMIT 10",
                    "params": {"c": "paper"},
                }
            ]
        ),
    ],
) -> QueryAnswer:
    """Run your own Cypher in a read-only transaction; writes and admin commands are refused."""
    driver: neo4j.Driver = request.app.state.driver
    try:
        result = run_adhoc(driver, body.query, body.params, **_limits(request, body.max_rows))
    except KgrecError as exc:
        raise _http_error(exc) from exc
    return _answer(result)
