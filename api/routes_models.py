"""Model governance over HTTP (admin keys): versions with metrics and lineage, gated activation,
rollback and the audit trail, under `/v1/admin/models`.

(`GET /v1/models` is the merchandiser page's read-only list; these routes change what is served,
so they live under an admin prefix of their own.)

Activation and rollback are the registry's (`gnn.registry.Registry`): the same gate, the same
`AuditEvent`, here with the API key as the actor. They write the version's embeddings to every
product and customer node, which takes seconds on a big catalogue, so they run in a worker
thread while the event loop keeps serving from the current snapshot; then this process swaps
in the new snapshot before answering (other processes see the changed active version in their
snapshot fingerprint within KGREC_SNAPSHOT_REFRESH_S). Requests in flight keep the snapshot they
started with, so a swap fails none of them.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from api.auth import AdminAccess
from api.errors import NotFound, body
from api.routes import ERRORS, StateDep
from api.serving import GRAPH_ERRORS, ServingState
from gnn.registry import GATE_METRIC, Activation, ModelVersion, Registry, RegistryError

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/admin/models", tags=["models"])

#: One activation or rollback at a time in a process: two at once would interleave their
#: embedding writes on the same nodes.
_CHANGING = threading.Lock()


# -- bodies ------------------------------------------------------------------------------------
class MetricOut(BaseModel):
    value: float
    low: float | None = Field(None, description="Lower end of the confidence interval.")
    high: float | None = Field(None, description="Upper end of the confidence interval.")


class LineageOut(BaseModel):
    data_hash: str | None = Field(description="Hash of the graph snapshot it was trained on.")
    ingest_runs: list[str] = Field(description="The ingest runs that snapshot held.")
    graph_counts: dict[str, Any] = Field(description="Nodes and relationships per type then.")
    training: dict[str, Any] = Field(description="Split, seed, epochs, timings.")
    previous_version: str | None = Field(description="Active before this one was activated.")
    artifacts: str


class ModelVersionOut(BaseModel):
    version_id: str
    model: str
    created_at: datetime
    active: bool
    activated_at: datetime | None
    deactivated_at: datetime | None
    has_embeddings: bool
    dimensions: int | None
    params: dict[str, Any]
    val_ndcg10: float | None
    test_ndcg10: float | None
    metrics: dict[str, dict[str, MetricOut]] = Field(
        description="Per split (validation, test), the whole-population metrics."
    )
    lineage: LineageOut


class ModelsOut(BaseModel):
    active: str | None
    serving: str | None = Field(description="The version this process's snapshot serves.")
    versions: list[ModelVersionOut]


class ActivateIn(BaseModel):
    force: bool = Field(False, description="Skip the gate; needs a reason (audited).")
    reason: str | None = Field(
        None, min_length=1, max_length=500, description="Why; kept in the audit event."
    )
    margin: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Relative validation NDCG@10 gain needed over the active version; "
        "default KGREC_ACTIVATION_MARGIN.",
    )

    @model_validator(mode="after")
    def _forced_needs_reason(self) -> ActivateIn:
        if self.force and not self.reason:
            raise ValueError("reason: a forced activation needs a reason (it is audited)")
        return self


class RollbackIn(BaseModel):
    reason: str | None = Field(
        None, min_length=1, max_length=500, description="Why; kept in the audit event."
    )


class ActivationOut(BaseModel):
    action: str = Field(description="activate or rollback.")
    version: ModelVersionOut
    previous: str | None = Field(description="The version active before.")
    forced: bool
    gate: str = Field(description="passed, or the gate's reason when forced.")
    nodes_written: int = Field(description="Product and customer nodes given the vectors.")
    actor: str
    serving: str | None = Field(description="The version this process's snapshot now serves.")


class GateOut(BaseModel):
    metric: str
    candidate: str
    candidate_value: float | None
    active: str | None
    active_value: float | None
    margin: float
    required: float | None = Field(description="The value the candidate needed at least.")


class ConflictBody(BaseModel):
    error: str
    detail: str
    gate: GateOut | None = Field(None, description="When the gate refused: what it compared.")


class AuditEventOut(BaseModel):
    event_id: str | None
    ts: datetime
    actor: str
    action: str
    subject_id: str
    before: str | None
    after: str | None
    forced: bool | None
    gate: str | None
    reason: str | None


CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ConflictBody,
        "description": "Refused: the gate (with the metrics compared), already active, no "
        "embeddings, vectors of another size, or nothing to roll back to.",
    }
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ConflictBody, "description": "No such model version."}
}


# -- helpers -----------------------------------------------------------------------------------
def _registry(state: ServingState) -> Registry:
    return Registry(
        state.driver, database=state.database, root=state.settings.app.home.resolve() / "models"
    )


async def get_registry(request: Request) -> Registry:
    return _registry(request.app.state.serving)


RegistryDep = Annotated[Registry, Depends(get_registry)]
VersionId = Annotated[str, Path(min_length=1, max_length=200, description="A version id.")]


def _json(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _native(value: Any) -> Any:
    return value.to_native() if hasattr(value, "to_native") else value


def _metrics(raw: Any) -> dict[str, dict[str, MetricOut]]:
    found = _json(raw)
    out: dict[str, dict[str, MetricOut]] = {}
    if not isinstance(found, dict):
        return out
    for split in ("validation", "test"):
        cells = found.get(split, {}).get("slices", {}).get("all", {}).get("metrics", {})
        values = {
            name: MetricOut(value=m["value"], low=m.get("low"), high=m.get("high"))
            for name, m in cells.items()
            if isinstance(m, dict) and isinstance(m.get("value"), int | float)
        }
        if values:
            out[split] = values
    return out


def _version(v: ModelVersion) -> ModelVersionOut:
    props = v.properties
    counts = _json(props.get("graph_counts"))
    training = _json(props.get("training"))
    params = _json(props.get("params"))
    return ModelVersionOut(
        version_id=v.version_id,
        model=v.model,
        created_at=v.created_at,
        active=v.active,
        activated_at=_native(props.get("activated_at")),
        deactivated_at=_native(props.get("deactivated_at")),
        has_embeddings=v.has_embeddings,
        dimensions=props.get("dimensions"),
        params=params if isinstance(params, dict) else {},
        val_ndcg10=v.val_ndcg10,
        test_ndcg10=v.test_ndcg10,
        metrics=_metrics(props.get("metrics")),
        lineage=LineageOut(
            data_hash=props.get("data_hash"),
            ingest_runs=list(props.get("ingest_runs") or []),
            graph_counts=counts if isinstance(counts, dict) else {},
            training=training if isinstance(training, dict) else {},
            previous_version=props.get("previous_version"),
            artifacts=str(v.artifacts),
        ),
    )


def _get(registry: Registry, version_id: str) -> ModelVersion:
    try:
        return registry.get(version_id)
    except RegistryError as exc:
        raise NotFound(str(exc)) from exc


def _conflict(detail: str, gate: GateOut | None = None) -> JSONResponse:
    content = body(409, detail)
    if gate is not None:
        content["gate"] = gate.model_dump()
    return JSONResponse(status_code=409, content=content)


def _gate(candidate: ModelVersion, active: ModelVersion | None, margin: float) -> GateOut:
    base = None if active is None else (active.val_ndcg10 or 0.0)
    return GateOut(
        metric=GATE_METRIC,
        candidate=candidate.version_id,
        candidate_value=candidate.val_ndcg10,
        active=None if active is None else active.version_id,
        active_value=base,
        margin=margin,
        required=None if base is None else round(base * (1 + margin), 6),
    )


def _swap(state: ServingState) -> str | None:
    """Swaps this process's serving snapshot now (the registry changed the active version)."""
    try:
        state.refresh(force=True)
    except GRAPH_ERRORS as exc:  # the thread retries: the old snapshot keeps serving
        logger.warning("snapshot not swapped after a model change: %s", exc)
        state.request_refresh()
    snapshot = state.current_snapshot
    return snapshot.version_id if snapshot else None


def _changed(action: str, result: Activation, who: str, state: ServingState) -> ActivationOut:
    return ActivationOut(
        action=action,
        version=_version(result.version),
        previous=result.previous.version_id if result.previous else None,
        forced=result.forced,
        gate=result.gate,
        nodes_written=result.nodes_written,
        actor=who,
        serving=_swap(state),
    )


# -- routes ------------------------------------------------------------------------------------
@router.get("", response_model=ModelsOut, responses=ERRORS)
async def list_versions(state: StateDep, registry: RegistryDep, _: AdminAccess) -> ModelsOut:
    """Every version, newest first, with its metrics and lineage; which is active and which
    this process serves."""
    versions = await run_in_threadpool(registry.versions)
    snapshot = state.current_snapshot
    return ModelsOut(
        active=next((v.version_id for v in versions if v.active), None),
        serving=snapshot.version_id if snapshot else None,
        versions=[_version(v) for v in versions],
    )


@router.get("/audit", response_model=list[AuditEventOut], responses=ERRORS)
async def audit_trail(
    registry: RegistryDep,
    _: AdminAccess,
    limit: Annotated[int, Query(ge=1, le=1000, description="Newest first, at most.")] = 50,
) -> list[AuditEventOut]:
    """Activations and rollbacks, newest first: who, what, when, before and after."""
    events = await run_in_threadpool(registry.audit_trail, limit)
    return [
        AuditEventOut(
            event_id=e.get("event_id"),
            ts=_native(e["ts"]),
            actor=e.get("actor") or "unknown",
            action=e.get("action") or "",
            subject_id=e.get("subject_id") or "",
            before=e.get("before"),
            after=e.get("after"),
            forced=e.get("forced"),
            gate=e.get("gate"),
            reason=e.get("reason"),
        )
        for e in events
    ]


@router.get("/{version_id}", response_model=ModelVersionOut, responses={**ERRORS, **NOT_FOUND})
async def show_version(
    version_id: VersionId, registry: RegistryDep, _: AdminAccess
) -> ModelVersionOut:
    """One version: parameters, metrics with their intervals, lineage."""
    return _version(await run_in_threadpool(_get, registry, version_id))


@router.post(
    "/{version_id}/activate",
    response_model=ActivationOut,
    responses={**ERRORS, **NOT_FOUND, **CONFLICT},
)
async def activate(
    version_id: VersionId,
    change: ActivateIn,
    state: StateDep,
    registry: RegistryDep,
    principal: AdminAccess,
) -> ActivationOut | JSONResponse:
    """Makes a version active if its validation NDCG@10 beats the active one's by the margin
    (409 with both values otherwise), or forced with a reason. Writes its embeddings to the
    graph, swaps this process's serving snapshot, and records an AuditEvent naming the key."""
    margin = change.margin if change.margin is not None else state.settings.app.activation_margin
    who = principal.actor

    def run() -> ActivationOut | JSONResponse:
        with _CHANGING:
            candidate = _get(registry, version_id)
            current = registry.active()
            try:
                result = registry.activate(
                    version_id,
                    margin=margin,
                    force=change.force,
                    reason=change.reason,
                    actor=who,
                )
            except RegistryError as exc:
                refused_by_gate = str(exc).startswith("not activated:")
                gate = _gate(candidate, current, margin) if refused_by_gate else None
                detail = str(exc).replace("--force with --reason", '"force": true and a "reason"')
                return _conflict(detail, gate)
            return _changed("activate", result, who, state)

    return await run_in_threadpool(run)


@router.post("/rollback", response_model=ActivationOut, responses={**ERRORS, **CONFLICT})
async def rollback(
    change: RollbackIn, state: StateDep, registry: RegistryDep, principal: AdminAccess
) -> ActivationOut | JSONResponse:
    """Reactivates the version that was active before the current one (no gate), swaps this
    process's serving snapshot, and records an AuditEvent naming the key."""
    who = principal.actor

    def run() -> ActivationOut | JSONResponse:
        with _CHANGING:
            try:
                result = registry.rollback(actor=who, reason=change.reason)
            except RegistryError as exc:
                return _conflict(str(exc))
            return _changed("rollback", result, who, state)

    return await run_in_threadpool(run)
