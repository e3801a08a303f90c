"""Privacy routes: a customer's opt-out (storefront keys: the shop calls it when the customer
changes the setting) and erasure with a receipt (admin keys).

The erasure runs in this API process, so it also clears what the process holds in memory: its
event log (under the log's lock), the served-list queue, campaign jobs and the serving snapshot
(reloaded before the answer). Logs held by the other processes of `kgrec serve --workers N` are
erased by their own shippers on request (recommender/privacy.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import AdminAccess, EventsAccess
from api.campaigns import Campaigns
from api.errors import NotFound
from api.schemas import ErrorBody
from api.serving import ServingState
from recommender.events import EventLog, EventShipper
from recommender.privacy import (
    CustomerNotFound,
    ErasureReceipt,
    LiveState,
    Privacy,
    set_personalization,
)
from recommender.served import ServedLog

privacy_router = APIRouter(prefix="/v1", tags=["privacy"])

CustomerId = Annotated[str, Path(min_length=1, max_length=200, description="The shop's id.")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No API key, or an unknown or revoked one."},
    403: {"model": ErrorBody, "description": "The key's role may not use this route."},
    422: {"model": ErrorBody, "description": "Bad input: `fields` names each field and why."},
    503: {"model": ErrorBody, "description": "Neo4j unreachable."},
}


class PersonalizationRequest(BaseModel):
    """The customer's choice, as the shop records it."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"enabled": False, "reason": "account"}]}
    )

    enabled: bool = Field(
        description="false: opted out (non-personal lists, never shown in other customers' "
        "explanations, no embedding); true: personalised again."
    )
    reason: str | None = Field(
        None, max_length=500, description="Where the choice was made, for the audit trail."
    )


class PersonalizationState(BaseModel):
    customer_id: str
    personalization: bool
    previous: bool = Field(description="The setting before this call.")
    created: bool = Field(
        description="The customer was not in the graph yet (their first events had not "
        "shipped): they were created with this choice."
    )
    audit_event_id: str


@privacy_router.put(
    "/customers/{customer_id}/personalization",
    response_model=PersonalizationState,
    responses=ERRORS,
)
def put_personalization(
    customer_id: CustomerId,
    request: Request,
    principal: EventsAccess,
    body: Annotated[PersonalizationRequest, Body()],
) -> PersonalizationState:
    """Opt a customer out of personalisation (or back in); audited, and the serving snapshot
    reloads at once in this process (within `KGREC_SNAPSHOT_REFRESH_S` in the others)."""
    serving: ServingState = request.app.state.serving
    change = set_personalization(
        request.app.state.driver,
        database=serving.database,
        customer_id=customer_id,
        enabled=body.enabled,
        actor=principal.actor,
        reason=body.reason,
    )
    serving.request_refresh()
    return PersonalizationState(
        customer_id=change.customer_id,
        personalization=change.personalization,
        previous=change.previous,
        created=change.created,
        audit_event_id=change.audit_event_id,
    )


@privacy_router.delete(
    "/customers/{customer_id}",
    response_model=ErasureReceipt,
    responses={
        **ERRORS,
        404: {"model": ErrorBody, "description": "No store holds the customer."},
    },
)
def erase_customer(
    customer_id: CustomerId,
    request: Request,
    principal: AdminAccess,
    orders: Annotated[
        Literal["anonymise", "delete"],
        Query(
            description="anonymise (default): the customer's orders stay as anonymous sales "
            "records; delete: they go too."
        ),
    ] = "anonymise",
    reason: Annotated[
        str | None, Query(max_length=500, description="Why, for the audit trail.")
    ] = None,
) -> ErasureReceipt:
    """Erase a customer from every store (graph, embeddings, event logs, served lists, model
    artifacts, campaign exports, ingestion rejects, caches) and answer with the receipt, which
    is stored as an AuditEvent naming the customer only by a keyed hash. Repeating it is safe:
    a customer no store holds is a 404."""
    serving: ServingState = request.app.state.serving
    log: EventLog = request.app.state.event_log
    shipper: EventShipper = request.app.state.shipper
    served: ServedLog = request.app.state.served
    campaigns: Campaigns = request.app.state.campaigns
    privacy = Privacy(request.app.state.driver, database=serving.database, app=serving.settings.app)

    def refresh() -> None:
        serving.refresh(force=True)

    live = LiveState(
        event_log=log,
        shipper=shipper,
        served=served,
        forget_campaigns=campaigns.forget,
        refresh_snapshot=refresh,
    )
    try:
        return privacy.erase(
            customer_id,
            actor=principal.actor,
            delete_orders=orders == "delete",
            reason=reason,
            live=live,
        )
    except CustomerNotFound as exc:
        raise NotFound(str(exc)) from exc
