"""`/v1/experiments`: A/B experiments for admins. Create (at most one running experiment per
surface, else 409), list, show (with the audit trail), report per variant, stop, promote a
winner. Every change is an `AuditEvent` naming the key that made it; this process serves by the
change from the next request, the others within `KGREC_SNAPSHOT_REFRESH_S`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api import errors
from api.auth import AdminAccess
from api.schemas import ErrorBody
from api.serving import ServingState
from gnn.registry import Registry, RegistryError
from graph.settings import Settings
from recommender.experiments import (
    Experiment,
    ExperimentConflict,
    ExperimentError,
    ExperimentNotFound,
    ExperimentReport,
    ExperimentSpec,
    ExperimentStore,
)

if TYPE_CHECKING:
    from recommender.experiment_stats import Comparison, Estimate, VariantReport

experiments_router = APIRouter(prefix="/v1/experiments", tags=["experiments"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No API key, or an unknown or revoked one."},
    403: {"model": ErrorBody, "description": "Experiments need an admin key."},
    404: {"model": ErrorBody, "description": "No experiment with this id."},
    422: {"model": ErrorBody, "description": "Bad input: `fields` names each field and why."},
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Clashes with the experiment's state or another one."}
}
ExperimentId = Annotated[str, Path(min_length=1, max_length=100)]


# -- bodies and answers -------------------------------------------------------------------------
class VariantOut(BaseModel):
    name: str
    weight: float
    model_version: str | None
    ranking: dict[str, float | int | None]


class ExperimentOut(BaseModel):
    experiment_id: str
    name: str
    status: str
    surfaces: list[str]
    control: str
    variants: list[VariantOut]
    note: str
    created_at: datetime
    created_by: str
    stopped_at: datetime | None
    stopped_by: str | None
    promoted_variant: str | None
    promoted_at: datetime | None
    promoted_by: str | None
    audit: list[dict[str, Any]] = Field(
        default_factory=list, description="Audit events, oldest first (show only)."
    )


class StopRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=1000, description="For the audit trail.")


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str = Field(min_length=1, max_length=40, description="The winner's name.")
    reason: str | None = Field(None, max_length=1000, description="For the audit trail.")


class PromotionOut(BaseModel):
    experiment: ExperimentOut
    variant: str
    activated_model: str | None = Field(
        description="The model version activated through the registry (forced, audited there)."
    )
    ranking: dict[str, float | int | None] | None = Field(
        description="Ranking weights every API process applies to the experiment's surfaces."
    )


class EstimateOut(BaseModel):
    value: float | None
    ci_low: float | None
    ci_high: float | None


class ComparisonOut(BaseModel):
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    relative_lift: float | None
    p_value: float | None
    p_adjusted: float | None
    significant: bool
    test: str


class VariantReportOut(BaseModel):
    name: str
    customers: int = Field(description="Customers shown at least one list of the experiment.")
    lists: int
    impressions: int = Field(description="Items shown.")
    clicks: int = Field(description="Clicks on items recommended to the clicker, after showing.")
    clicks_per_list: float | None
    item_click_rate: float | None
    metrics: dict[str, EstimateOut]
    vs_control: dict[str, ComparisonOut]


class ReportOut(BaseModel):
    experiment_id: str
    name: str
    status: str
    control: str
    alpha: float
    window_end: datetime = Field(description="Events up to here count: the stop, else now.")
    variants: list[VariantReportOut]
    customers_in_several_variants: int
    notes: list[str]


def _experiment(e: Experiment, audit: list[dict[str, Any]] | None = None) -> ExperimentOut:
    return ExperimentOut(
        experiment_id=e.experiment_id,
        name=e.name,
        status=e.status,
        surfaces=list(e.surfaces),
        control=e.control,
        variants=[
            VariantOut(
                name=v.name, weight=v.weight, model_version=v.model_version, ranking=v.ranking
            )
            for v in e.variants
        ],
        note=e.note,
        created_at=e.created_at,
        created_by=e.created_by,
        stopped_at=e.stopped_at,
        stopped_by=e.stopped_by,
        promoted_variant=e.promoted_variant,
        promoted_at=e.promoted_at,
        promoted_by=e.promoted_by,
        audit=[
            {k: (v.to_native() if hasattr(v, "to_native") else v) for k, v in a.items()}
            for a in audit or []
        ],
    )


def _estimate(e: Estimate) -> EstimateOut:
    return EstimateOut(value=e.value, ci_low=e.ci_low, ci_high=e.ci_high)


def _comparison(c: Comparison) -> ComparisonOut:
    return ComparisonOut(**{f: getattr(c, f) for f in ComparisonOut.model_fields})


def _variant_report(v: VariantReport) -> VariantReportOut:
    return VariantReportOut(
        name=v.name,
        customers=v.customers,
        lists=v.lists,
        impressions=v.impressions,
        clicks=v.clicks,
        clicks_per_list=v.clicks_per_list,
        item_click_rate=v.item_click_rate,
        metrics={m: _estimate(e) for m, e in v.metrics.items()},
        vs_control={m: _comparison(c) for m, c in v.vs_control.items()},
    )


def report_out(report: ExperimentReport) -> ReportOut:
    """The report as the API and `kgrec experiments report --json` give it."""
    e = report.experiment
    return ReportOut(
        experiment_id=e.experiment_id,
        name=e.name,
        status=e.status,
        control=report.stats.control,
        alpha=report.stats.alpha,
        window_end=report.window_end,
        variants=[_variant_report(v) for v in report.stats.variants],
        customers_in_several_variants=report.customers_in_several_variants,
        notes=report.stats.notes,
    )


# -- dependencies ---------------------------------------------------------------------------------
async def get_store(request: Request) -> ExperimentStore:
    state: ServingState = request.app.state.serving
    return state.experiments.store


async def get_state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


StoreDep = Annotated[ExperimentStore, Depends(get_store)]
StateDep = Annotated[ServingState, Depends(get_state)]


def _refused(exc: ExperimentError) -> Exception:
    """The project's experiment errors as HTTP answers."""
    if isinstance(exc, ExperimentNotFound):
        return errors.NotFound(str(exc))
    if isinstance(exc, ExperimentConflict):
        return HTTPException(status.HTTP_409_CONFLICT, str(exc))
    return _Unprocessable(exc)


class _Unprocessable(Exception):
    def __init__(self, exc: ExperimentError) -> None:
        super().__init__(str(exc))
        self.field = exc.field


def include(app: FastAPI) -> None:
    """Adds the routes and the 422 answer naming the field (a model version, a variant)."""

    async def unprocessable(_: Request, exc: Exception) -> JSONResponse:
        field = getattr(exc, "field", None)
        fields = [{"location": f"body.{field}", "value": None, "reason": str(exc)}] if field else []
        return JSONResponse(status_code=422, content=errors.body(422, str(exc), fields))

    app.add_exception_handler(_Unprocessable, unprocessable)
    app.include_router(experiments_router)


# -- routes ---------------------------------------------------------------------------------------
@experiments_router.post(
    "",
    response_model=ExperimentOut,
    status_code=status.HTTP_201_CREATED,
    responses={**RESPONSES, **CONFLICT},
)
def create_experiment(
    spec: ExperimentSpec, store: StoreDep, state: StateDep, principal: AdminAccess
) -> ExperimentOut:
    """Starts an experiment: customers of its surfaces are split between the variants by a
    stable hash of their id; each served list says its `experiment` and is written back."""
    try:
        experiment = store.create(spec, actor=principal.actor)
    except ExperimentError as exc:
        raise _refused(exc) from exc
    state.refresh_experiments()
    return _experiment(experiment)


@experiments_router.get("", response_model=list[ExperimentOut], responses=RESPONSES)
def list_experiments(
    store: StoreDep, _: AdminAccess, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[ExperimentOut]:
    """Experiments, newest first."""
    return [_experiment(e) for e in store.recent(limit)]


@experiments_router.get("/{experiment_id}", response_model=ExperimentOut, responses=RESPONSES)
def show_experiment(experiment_id: ExperimentId, store: StoreDep, _: AdminAccess) -> ExperimentOut:
    """One experiment with its audit trail."""
    try:
        return _experiment(store.get(experiment_id), store.audit_trail(experiment_id))
    except ExperimentError as exc:
        raise _refused(exc) from exc


@experiments_router.get("/{experiment_id}/report", response_model=ReportOut, responses=RESPONSES)
def experiment_report(
    experiment_id: ExperimentId,
    store: StoreDep,
    _: AdminAccess,
    alpha: Annotated[float, Query(gt=0, lt=0.5, description="Significance level.")] = 0.05,
) -> ReportOut:
    """Per variant: exposed customers, lists, clicks; click-through, add-to-cart and conversion
    rates and revenue per customer with confidence intervals, and each against the control
    (difference, interval, p-value; Holm-adjusted with several variants)."""
    try:
        return report_out(store.report(experiment_id, alpha=alpha))
    except ExperimentError as exc:
        raise _refused(exc) from exc


@experiments_router.post(
    "/{experiment_id}/stop", response_model=ExperimentOut, responses={**RESPONSES, **CONFLICT}
)
def stop_experiment(
    experiment_id: ExperimentId,
    store: StoreDep,
    state: StateDep,
    principal: AdminAccess,
    body: StopRequest | None = None,
) -> ExperimentOut:
    """Stops it: everyone gets the control again; the report counts up to the stop."""
    try:
        experiment = store.stop(
            experiment_id, actor=principal.actor, reason=body.reason if body else None
        )
    except ExperimentError as exc:
        raise _refused(exc) from exc
    state.refresh_experiments()
    return _experiment(experiment)


@experiments_router.post(
    "/{experiment_id}/promote", response_model=PromotionOut, responses={**RESPONSES, **CONFLICT}
)
def promote_variant(
    experiment_id: ExperimentId,
    request: PromoteRequest,
    store: StoreDep,
    state: StateDep,
    principal: AdminAccess,
) -> PromotionOut:
    """Makes a variant what everyone gets (stopping the experiment if it runs): a model
    version is activated through the registry (forced, with the experiment as the reason);
    ranking weights are stored and applied by every API process over KGREC_SURFACE_WEIGHTS."""
    settings: Settings = state.settings
    registry = Registry(
        state.driver, database=state.database, root=settings.app.home.resolve() / "models"
    )
    actor = principal.actor
    active = registry.active()

    def activate(version_id: str, reason: str) -> None:
        registry.activate(
            version_id,
            margin=settings.app.activation_margin,
            force=True,
            reason=reason,
            actor=actor,
            action="activate",
        )

    try:
        promotion = store.promote(
            experiment_id,
            request.variant,
            activate=activate,
            active_model=active.version_id if active else None,
            actor=actor,
            reason=request.reason,
        )
    except ExperimentError as exc:
        raise _refused(exc) from exc
    except RegistryError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"not promoted: {exc}") from exc
    state.refresh_experiments()
    if promotion.activated_model:
        state.request_refresh()  # the new active model's snapshot
    return PromotionOut(
        experiment=_experiment(promotion.experiment),
        variant=promotion.variant.name,
        activated_model=promotion.activated_model,
        ranking=promotion.ranking,
    )
