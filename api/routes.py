"""The `/v1` routes: thin wrappers over the engine, the explainer, the event log, the upserts
and the rules store. Unknown ids: a customer the shop has never seen gets the fallback chain
(200); a product id that is not in the catalogue is a 404 naming it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field, ValidationError

from api.auth import (
    CatalogueAccess,
    EventsAccess,
    ExplainAccess,
    RecommendAccess,
    RulesAccess,
)
from api.campaigns import CampaignNotFound, Campaigns, Job
from api.errors import NotFound
from api.explaining import Explanations
from api.metrics import Metrics
from api.schemas import (
    CampaignJob,
    CampaignRequest,
    CartRequest,
    ErrorBody,
    EventsAccepted,
    ExplanationOut,
    PathOut,
    RecommendationList,
    RuleOut,
    Surface,
    UpsertOut,
    WhyNotOut,
)
from api.serving import ServingState
from graph.ingest.upsert import EXAMPLES, UpsertKind, upsert
from recommender.engine import Engine, Filters, Item, Rule
from recommender.events import Event, EventLog
from recommender.experiments import Assignment
from recommender.rules import RuleNotFound, RuleSpec
from recommender.served import ServedItem, ServedLog

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No API key, or an unknown or revoked one."},
    403: {"model": ErrorBody, "description": "The key's role may not use this route."},
    422: {"model": ErrorBody, "description": "Bad input: `fields` names each field and why."},
    503: {"model": ErrorBody, "description": "No serving snapshot yet, or Neo4j unreachable."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "An unknown product id (named in `detail`)."}
}


async def get_state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


async def get_explanations(request: Request) -> Explanations:
    explanations: Explanations = request.app.state.explanations
    return explanations


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_event_log(request: Request) -> EventLog:
    log: EventLog = request.app.state.event_log
    return log


async def get_campaigns(request: Request) -> Campaigns:
    campaigns: Campaigns = request.app.state.campaigns
    return campaigns


@dataclass(frozen=True)
class Storefront:
    """What a storefront list route uses, as one dependency: FastAPI resolves every dependency
    of every request anew (about 20 us each, measured), and these lists are the hot path."""

    state: ServingState
    explanations: Explanations
    metrics: Metrics
    served: ServedLog


async def get_storefront(request: Request) -> Storefront:
    storefront: Storefront = request.app.state.storefront
    return storefront


StateDep = Annotated[ServingState, Depends(get_state)]
StorefrontDep = Annotated[Storefront, Depends(get_storefront)]
ExplanationsDep = Annotated[Explanations, Depends(get_explanations)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
EventLogDep = Annotated[EventLog, Depends(get_event_log)]
CampaignsDep = Annotated[Campaigns, Depends(get_campaigns)]

K = Annotated[int, Query(ge=1, le=100, description="How many items.")]
PathsParam = Annotated[
    int | None,
    Query(ge=0, le=10, description="Paths per item; 0 for none (faster). Default: setting."),
]
CustomerId = Annotated[str, Path(min_length=1, max_length=200, description="The shop's id.")]
ProductId = Annotated[str, Path(min_length=1, max_length=200, description="The shop's id.")]


class FilterQuery(BaseModel):
    """The lists' include/exclude filters, read from the query string in one validation: as
    seven FastAPI parameters they cost about 60 us on every list, used or not (measured). The
    routes document them from this model (`FILTER_PARAMETERS`)."""

    include_categories: list[str] = Field(
        default_factory=list, description="Only these categories (and subcategories)."
    )
    exclude_categories: list[str] = Field(default_factory=list, description="Not these categories.")
    include_brands: list[str] = Field(default_factory=list, description="Only these brands.")
    exclude_brands: list[str] = Field(default_factory=list, description="Not these brands.")
    min_price: float | None = Field(None, ge=0, description="At least this price.")
    max_price: float | None = Field(None, ge=0, description="At most this price.")
    max_per_category: int | None = Field(
        None, ge=1, le=100, description="At most this many per category."
    )


_FILTER_LISTS = frozenset(
    name for name, field in FilterQuery.model_fields.items() if field.annotation == list[str]
)
#: The filters as OpenAPI query parameters (`openapi_extra` of every list route).
FILTER_PARAMETERS = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": schema.get("description", ""),
        **({"style": "form", "explode": True} if name in _FILTER_LISTS else {}),
    }
    for name, schema in FilterQuery.model_json_schema()["properties"].items()
]
FILTERS_DOC: dict[str, Any] = {"parameters": FILTER_PARAMETERS}


async def filters(request: Request) -> Filters:
    """The request's filters; 422 naming the query parameter, as FastAPI's own would. A bad
    filter is reported alone (FastAPI's parameters would have been reported together with
    any other bad parameter of the request)."""
    query = request.query_params
    given = {
        name: query.getlist(name) if name in _FILTER_LISTS else query[name]
        for name in FilterQuery.model_fields
        if name in query
    }
    try:
        chosen = FilterQuery.model_validate(given) if given else NO_FILTER_QUERY
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from exc
    return Filters(
        include_categories=tuple(chosen.include_categories),
        exclude_categories=tuple(chosen.exclude_categories),
        include_brands=tuple(chosen.include_brands),
        exclude_brands=tuple(chosen.exclude_brands),
        min_price=chosen.min_price,
        max_price=chosen.max_price,
        max_per_category=chosen.max_per_category,
    )


NO_FILTER_QUERY = FilterQuery()
FiltersDep = Annotated[Filters, Depends(filters)]


def _items(items: list[Item], paths: dict[str, list[PathOut]]) -> list[dict[str, Any]]:
    """The items as `RecommendationOut` fields (validated once, with the whole list)."""
    return [
        {
            "product_id": item.product_id,
            "name": item.name,
            "rank": rank,
            "score": item.score,
            "relevance": item.relevance,
            "strategy": item.strategy,
            "sources": item.sources,
            "category_id": item.category_id,
            "brand_id": item.brand_id,
            "adjustments": [
                {"kind": a.kind, "reason": a.reason, "delta": a.delta} for a in item.adjustments
            ],
            "paths": paths.get(item.product_id, []),
        }
        for rank, item in enumerate(items, start=1)
    ]


PERSONAL_STRATEGIES = {"personal", "similar", "bought_together", "cart", "pinned"}


def _answer(
    store: Storefront,
    surface: str,
    items: list[Item],
    paths: dict[str, list[PathOut]],
    degraded: bool,
    customer_id: str | None = None,
    anchors: list[str] | None = None,
    engine: Engine | None = None,
    assignment: Assignment | None = None,
) -> Response:
    """The list as JSON, after its metrics, drift sample and write-back (customers' lists)."""
    state, metrics, served = store.state, store.metrics, store.served
    # The engine that built the list: a variant's while an experiment runs on the surface.
    engine = engine or state.engine
    list_id = uuid.uuid4().hex
    strategies = [i.strategy for i in items]
    metrics.served(surface, strategies)
    if customer_id is not None:
        metrics.observe_scores(state.engine.snapshot, surface, customer_id, items)
    if customer_id is not None:
        served.record(
            customer_id,
            surface,
            engine.snapshot.version_id,
            [
                ServedItem(
                    i.product_id,
                    r,
                    i.strategy,
                    tuple(sorted({p.kind for p in paths.get(i.product_id, [])})),
                )
                for r, i in enumerate(items, start=1)
            ],
            list_id=list_id,
            experiment_id=assignment.experiment_id if assignment else None,
            variant=assignment.variant if assignment else None,
        )
    # Neo4j unreachable: the list comes from the last snapshot, which cannot be refreshed
    # (its paths, from the snapshot's index, are still there).
    degraded = degraded or state.graph_down
    if degraded:
        metrics.degraded.inc()
    answer = RecommendationList.model_validate(
        {
            "surface": surface,
            "customer_id": customer_id,
            "anchor_product_ids": anchors or [],
            "model_version": engine.snapshot.version_id,
            "fallback": not (set(strategies) & (PERSONAL_STRATEGIES - {"pinned"})),
            "degraded": degraded,
            "generated_at": datetime.now(UTC),
            "list_id": list_id,
            "experiment": (
                {"id": assignment.experiment_id, "variant": assignment.variant}
                if assignment
                else None
            ),
            "items": _items(items, paths),
        }
    )
    # Validated in one call from plain data and serialised here, once, by pydantic's Rust core:
    # FastAPI would validate the model again before encoding it (a third of a list's serving
    # time, measured); one model per item and adjustment cost a quarter more than this.
    return Response(answer.model_dump_json(), media_type="application/json")


async def _product_page(
    surface_of: Callable[..., list[Item]],
    product_id: str,
    store: Storefront,
    filters: Filters,
    k: int,
    paths: int | None,
) -> Response:
    """A product-page list (`Engine.similar` or `Engine.bought_together`) with paths from the
    product."""
    _known_product(store.state, product_id)
    engine = store.state.engine
    items = surface_of(engine, product_id, k, filters=filters)
    explanations = store.explanations
    found, degraded = await explanations.storefront(
        explanations.for_anchors, engine, [product_id], items, paths
    )
    return _answer(store, "product", items, found, degraded, anchors=[product_id])


def _known_product(state: ServingState, product_id: str) -> None:
    if product_id not in state.engine.snapshot.product_index:
        raise NotFound(f"product {product_id!r} is not in the catalogue")


# -- recommendations ---------------------------------------------------------------------------
@router.get(
    "/customers/{customer_id}/recommendations",
    response_model=RecommendationList,
    tags=["recommendations"],
    responses=ERRORS,
    openapi_extra=FILTERS_DOC,
)
async def customer_recommendations(
    customer_id: CustomerId,
    store: StorefrontDep,
    _: RecommendAccess,
    filters: FiltersDep,
    k: K = 10,
    surface: Annotated[Literal["home", "email"], Query(description="home or email.")] = "home",
    paths: PathsParam = None,
) -> Response:
    """A customer's list (home page, e-mail). An unknown or brand-new customer is not an
    error: they get the fallback chain (segment popular, category popular, global popular),
    and each item names its strategy. Opted-out customers get non-personal lists. While an A/B
    experiment runs on the surface, the customer's variant builds the list (`experiment`)."""
    engine, assignment = store.state.route(customer_id, surface)
    items = engine.recommend(customer_id, k, surface=surface, filters=filters)
    explanations = store.explanations
    found, degraded = await explanations.storefront(
        explanations.for_customer, engine, customer_id, items, paths
    )
    return _answer(
        store,
        surface,
        items,
        found,
        degraded,
        customer_id=customer_id,
        engine=engine,
        assignment=assignment,
    )


@router.get(
    "/products/{product_id}/similar",
    response_model=RecommendationList,
    tags=["recommendations"],
    responses={**ERRORS, **NOT_FOUND},
    openapi_extra=FILTERS_DOC,
)
async def similar_products(
    product_id: ProductId,
    store: StorefrontDep,
    _: RecommendAccess,
    filters: FiltersDep,
    k: K = 10,
    paths: PathsParam = None,
) -> Response:
    """Product page: products like this one (the active model's vectors), then popular in its
    category. 404 for an unknown product."""
    return await _product_page(Engine.similar, product_id, store, filters, k, paths)


@router.get(
    "/products/{product_id}/bought-together",
    response_model=RecommendationList,
    tags=["recommendations"],
    responses={**ERRORS, **NOT_FOUND},
    openapi_extra=FILTERS_DOC,
)
async def bought_together(
    product_id: ProductId,
    store: StorefrontDep,
    _: RecommendAccess,
    filters: FiltersDep,
    k: K = 10,
    paths: PathsParam = None,
) -> Response:
    """Product page: what customers bought with this product (co-purchase), then similar and
    popular. 404 for an unknown product."""
    return await _product_page(Engine.bought_together, product_id, store, filters, k, paths)


@router.post(
    "/cart/recommendations",
    response_model=RecommendationList,
    tags=["recommendations"],
    responses={**ERRORS, **NOT_FOUND},
    openapi_extra=FILTERS_DOC,
)
async def cart_cross_sell(
    cart: CartRequest,
    store: StorefrontDep,
    _: RecommendAccess,
    filters: FiltersDep,
) -> Response:
    """Cart cross-sell: what goes with the cart's items. 404 naming the first unknown product;
    an unknown customer id only means nothing is left out for past purchases."""
    for product_id in cart.product_ids:
        _known_product(store.state, product_id)
    engine, assignment = store.state.route(cart.customer_id, "cart")
    items = engine.cart(cart.product_ids, cart.k, customer_id=cart.customer_id, filters=filters)
    explanations = store.explanations
    found, degraded = await explanations.storefront(
        explanations.for_anchors, engine, cart.product_ids, items, cart.paths
    )
    return _answer(
        store,
        "cart",
        items,
        found,
        degraded,
        customer_id=cart.customer_id,
        anchors=cart.product_ids,
        engine=engine,
        assignment=assignment,
    )


# -- explanations ------------------------------------------------------------------------------
@router.get(
    "/customers/{customer_id}/why-not/{product_id}",
    response_model=WhyNotOut,
    tags=["explanations"],
    responses={**ERRORS, **NOT_FOUND},
    openapi_extra=FILTERS_DOC,
)
async def why_not(
    customer_id: CustomerId,
    product_id: ProductId,
    state: StateDep,
    explanations: ExplanationsDep,
    _: ExplainAccess,
    filters: FiltersDep,
    k: K = 10,
    surface: Annotated[Surface, Query()] = "home",
) -> WhyNotOut:
    """Why a product is not in the customer's list: the filter or rule that removed it, its
    stock state, else where it ranked and the score gap to the last item shown."""
    _known_product(state, product_id)
    engine = state.engine
    # Ranking every candidate can take a while on a big catalogue: off the event loop.
    answer = await run_in_threadpool(
        lambda: engine.why_not(customer_id, product_id, k, surface=surface, filters=filters)
    )
    found, _degraded = await run_in_threadpool(
        explanations.paths_for, engine, customer_id, [product_id], 3
    )
    return WhyNotOut(
        customer_id=customer_id,
        surface=surface,
        paths=found.get(product_id, []),
        **{
            f: getattr(answer, f)
            for f in (
                "product_id",
                "shown",
                "rank",
                "removed_by",
                "stock",
                "score",
                "last_shown_score",
                "gap",
                "strategy",
            )
        },
    )


@router.get(
    "/customers/{customer_id}/explanations/{product_id}",
    response_model=ExplanationOut,
    tags=["explanations"],
    responses={**ERRORS, **NOT_FOUND},
)
async def explain(
    customer_id: CustomerId,
    product_id: ProductId,
    state: StateDep,
    explanations: ExplanationsDep,
    _: ExplainAccess,
    paths: Annotated[int, Query(ge=1, le=10)] = 5,
) -> ExplanationOut:
    """Paths from a customer to any product (recommended or not), for merchandisers."""
    _known_product(state, product_id)
    found, degraded = await run_in_threadpool(
        explanations.paths_for, state.engine, customer_id, [product_id], paths
    )
    return ExplanationOut(
        customer_id=customer_id,
        product_id=product_id,
        degraded=degraded,
        paths=found.get(product_id, []),
    )


# -- campaigns ---------------------------------------------------------------------------------
def _job(job: Job) -> CampaignJob:
    exports = {}
    if job.status == "done":
        exports = {f: f"/v1/campaigns/{job.job_id}/export?format={f}" for f in ("csv", "json")}
    return CampaignJob(
        job_id=job.job_id,
        segment=job.segment,
        k=job.k,
        surface=job.surface,
        status=job.status,
        customers_total=len(job.customers),
        customers_done=job.done,
        progress=round(job.progress, 4),
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
        exports=exports,
    )


@router.post(
    "/campaigns",
    response_model=CampaignJob,
    status_code=status.HTTP_202_ACCEPTED,
    tags=["campaigns"],
    responses={**ERRORS, 404: {"model": ErrorBody, "description": "A segment with nobody."}},
)
def start_campaign(
    request: CampaignRequest, state: StateDep, campaigns: CampaignsDep, _: RecommendAccess
) -> CampaignJob:
    """Builds the list of every customer of a segment in the background; poll the job, then
    download the CSV or JSON export."""
    try:
        job = campaigns.submit(state.engine, request.segment, request.k, request.surface)
    except CampaignNotFound as exc:
        raise NotFound(str(exc)) from exc
    return _job(job)


@router.get(
    "/campaigns/{job_id}",
    response_model=CampaignJob,
    tags=["campaigns"],
    responses={**ERRORS, 404: {"model": ErrorBody, "description": "No such job."}},
)
def campaign_status(job_id: str, campaigns: CampaignsDep, _: RecommendAccess) -> CampaignJob:
    """Progress of a campaign job."""
    try:
        return _job(campaigns.get(job_id))
    except CampaignNotFound as exc:
        raise NotFound(str(exc)) from exc


@router.get(
    "/campaigns/{job_id}/export",
    tags=["campaigns"],
    response_class=FileResponse,
    responses={**ERRORS, 404: {"model": ErrorBody, "description": "No such job or not done."}},
)
def campaign_export(
    job_id: str,
    campaigns: CampaignsDep,
    _: RecommendAccess,
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
) -> FileResponse:
    """The finished campaign as CSV (customer_id, rank, product_id, name, score, strategy,
    adjustments) or JSON."""
    try:
        job = campaigns.get(job_id)
    except CampaignNotFound as exc:
        raise NotFound(str(exc)) from exc
    path = campaigns.export_path(job_id, format)
    if job.status != "done" or not path.exists():
        raise NotFound(f"campaign {job_id} is {job.status} ({job.progress:.0%}); no export yet")
    media = "text/csv" if format == "csv" else "application/json"
    return FileResponse(path, media_type=media, filename=f"campaign-{job_id}.{format}")


# -- events ------------------------------------------------------------------------------------
@router.post(
    "/events",
    response_model=EventsAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    tags=["events"],
    responses=ERRORS,
)
def post_events(
    events: Annotated[list[Event], Body(min_length=1, max_length=1000)],
    log: EventLogDep,
    metrics: MetricsDep,
    _: EventsAccess,
) -> EventsAccepted:
    """Storefront events (view, click, add_to_cart, purchase), 1 to 1,000 per request. They are
    on disk (fsync) before the answer and reach Neo4j in batches, exactly once, even across
    Neo4j downtime and API restarts. Send `event_id` to make retries safe."""
    ids = log.append(events)
    for event in events:
        metrics.events.labels(event.kind).inc()
    return EventsAccepted(accepted=len(ids), event_ids=ids, durable=True)


# -- catalogue, stock, promotions --------------------------------------------------------------
@router.put(
    "/catalogue/{kind}",
    response_model=UpsertOut,
    tags=["catalogue"],
    responses=ERRORS,
)
def put_rows(
    kind: Annotated[
        UpsertKind, Path(description="categories, products, promotions, stock, relations")
    ],
    rows: Annotated[
        list[dict[str, Any]],
        Body(
            description="Rows in the input format of that file (see docs/data-format.md).",
            openapi_examples={
                k.value: {"summary": k.value, "value": v} for k, v in EXAMPLES.items()
            },
        ),
    ],
    state: StateDep,
    _: CatalogueAccess,
) -> UpsertOut:
    """Creates or updates rows with the ingestion validators: all or nothing, errors naming the
    row index and field. The serving snapshot reloads right after."""
    result = upsert(state.driver, database=state.database, kind=kind, rows=rows, source="api")
    state.request_refresh()
    return UpsertOut(
        kind=result.kind,
        rows_written=result.rows_written,
        run_id=result.run_id,
        warnings=result.warnings,
    )


# -- merchandising rules -----------------------------------------------------------------------
def _rule(rule: Rule) -> RuleOut:
    return RuleOut(
        rule_id=rule.rule_id,
        action=rule.action,
        target_kind=rule.target_kind,
        target_id=rule.target_id,
        surface=rule.surface,
        segment=rule.segment,
        weight=rule.weight,
        position=rule.position,
        note=rule.note,
    )


@router.get("/rules", response_model=list[RuleOut], tags=["rules"], responses=ERRORS)
def list_rules(state: StateDep, _: RulesAccess) -> list[RuleOut]:
    """The merchandising rules in force."""
    return [_rule(r) for r in state.engine.rules]


@router.post(
    "/rules",
    response_model=RuleOut,
    status_code=status.HTTP_201_CREATED,
    tags=["rules"],
    responses=ERRORS,
)
def create_rule(spec: RuleSpec, state: StateDep, principal: RulesAccess) -> RuleOut:
    """Adds a rule (pin, boost, bury, exclude); it applies from the next request on and is
    audited with the key that made it."""
    rule = state.rules.create(spec, actor=principal.actor)
    state.reload_rules()
    return _rule(rule)


@router.delete(
    "/rules/{rule_id}",
    response_model=RuleOut,
    tags=["rules"],
    responses={**ERRORS, 404: {"model": ErrorBody, "description": "No such rule."}},
)
def delete_rule(rule_id: str, state: StateDep, principal: RulesAccess) -> RuleOut:
    """Removes a rule (audited)."""
    try:
        rule = state.rules.delete(rule_id, actor=principal.actor)
    except RuleNotFound as exc:
        raise NotFound(str(exc)) from exc
    state.reload_rules()
    return _rule(rule)
