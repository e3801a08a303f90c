"""Request and response bodies of the HTTP API (explicit models; the engine's dataclasses stay
free of HTTP concerns)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Surface = Literal["home", "product", "cart", "email"]


class ErrorBody(BaseModel):
    """Every error: what went wrong and what to do; `fields` for bad input."""

    error: str = Field(description="A short code: not_found, invalid_request, unauthorized, ...")
    detail: str = Field(description="A sentence a person can act on.")
    fields: list[dict[str, Any]] | None = Field(
        None, description="Bad input: one entry per field (location, value, reason)."
    )


class AdjustmentOut(BaseModel):
    kind: str = Field(description="stock, overstock, promotion, rule or diversity.")
    reason: str = Field(
        description='Why, with the size, e.g. "12 in stock, 4 days of cover, restock in 10 '
        'days, stockout probability 27%: -0.08".'
    )
    delta: float = Field(description="What it added to the item's score.")


class PathNodeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    label: str
    id: str
    name: str


class PathRelationshipOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    type: str
    start: int = Field(description="Index in `nodes` of the node it starts from.")
    end: int = Field(description="Index in `nodes` of the node it points to.")
    properties: dict[str, Any] = Field(default_factory=dict)


class PathOut(BaseModel):
    """A typed path in the graph from the customer (or anchor products) to the item."""

    model_config = ConfigDict(from_attributes=True)

    kind: str = Field(description="The path type, e.g. bought_same_category.")
    nodes: list[PathNodeOut]
    relationships: list[PathRelationshipOut] = Field(
        description="relationships[i] joins nodes[i] and nodes[i + 1]; start and end give its "
        "direction."
    )
    score: float = Field(description="Recency, specificity of the shared node, model agreement.")
    sentence: str = Field(description="One line a merchandiser can read.")


class RecommendationOut(BaseModel):
    product_id: str
    name: str
    rank: int = Field(description="1-based place in the list.")
    score: float = Field(description="relevance plus the adjustments.")
    relevance: float = Field(description="The strategy's score rescaled to [0, 1].")
    strategy: str = Field(
        description="What produced the item: personal, similar, bought_together, cart, "
        "segment_popular, category_popular, global_popular or pinned."
    )
    sources: list[str] = Field(description="Candidate generators that proposed it.")
    category_id: str | None = None
    brand_id: str | None = None
    adjustments: list[AdjustmentOut]
    paths: list[PathOut] = Field(default_factory=list)


class ExperimentTag(BaseModel):
    """The experiment a list belongs to (`kgrec experiments`), and the customer's variant."""

    id: str
    variant: str


class RecommendationList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "surface": "home",
                    "customer_id": "C00042",
                    "anchor_product_ids": [],
                    "model_version": "kg-gnn-20261204-101500-1a2b3c",
                    "fallback": False,
                    "degraded": False,
                    "generated_at": "2026-12-05T10:15:00Z",
                    "items": [
                        {
                            "product_id": "P00017",
                            "name": "Fountain pen, blue",
                            "rank": 1,
                            "score": 0.92,
                            "relevance": 1.0,
                            "strategy": "personal",
                            "sources": ["embedding", "co_purchase"],
                            "category_id": "C0012",
                            "brand_id": "B003",
                            "adjustments": [
                                {
                                    "kind": "stock",
                                    "reason": "12 in stock, 4 days of cover, restock in 10 "
                                    "days, stockout probability 27%: -0.08",
                                    "delta": -0.08,
                                }
                            ],
                            "paths": [
                                {
                                    "kind": "bought_same_category",
                                    "nodes": [
                                        {"label": "Customer", "id": "C00042", "name": "C00042"},
                                        {"label": "Product", "id": "P00011", "name": "Ink"},
                                        {"label": "Category", "id": "C0012", "name": "Pens"},
                                        {
                                            "label": "Product",
                                            "id": "P00017",
                                            "name": "Fountain pen, blue",
                                        },
                                    ],
                                    "relationships": [
                                        {
                                            "type": "PURCHASED",
                                            "start": 0,
                                            "end": 1,
                                            "properties": {"last_ts": "2026-11-02T09:00:00Z"},
                                        },
                                        {
                                            "type": "IN_CATEGORY",
                                            "start": 1,
                                            "end": 2,
                                            "properties": {},
                                        },
                                        {
                                            "type": "IN_CATEGORY",
                                            "start": 3,
                                            "end": 2,
                                            "properties": {},
                                        },
                                    ],
                                    "score": 0.71,
                                    "sentence": "Bought Ink on 2026-11-02; same category Pens "
                                    "(14 products).",
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )

    surface: str
    customer_id: str | None = None
    anchor_product_ids: list[str] = Field(default_factory=list)
    model_version: str | None = Field(description="The active model version that scored it.")
    fallback: bool = Field(description="True when no item is personal (or similar/co-bought).")
    degraded: bool = Field(
        False,
        description="True when Neo4j could not be read: the list comes from the last serving "
        "snapshot (paths from its index are kept; paths that needed a graph read are left out).",
    )
    generated_at: datetime
    list_id: str | None = Field(
        None, description="Id of this served list (kept with the list's write-back)."
    )
    experiment: ExperimentTag | None = Field(
        None, description="The A/B experiment and variant the list was served under, if any."
    )
    items: list[RecommendationOut]


class CartRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"product_ids": ["P00017", "P00233"], "customer_id": "C00042", "k": 5}]
        },
    )

    product_ids: list[str] = Field(min_length=1, max_length=100, description="The cart's items.")
    customer_id: str | None = Field(
        None, max_length=200, description="Leaves out what this customer already bought."
    )
    k: int = Field(10, ge=1, le=100)
    paths: int | None = Field(None, ge=0, le=10, description="Paths per item (default setting).")


class WhyNotOut(BaseModel):
    customer_id: str
    product_id: str
    surface: str
    shown: bool
    rank: int | None = Field(description="1-based rank among all candidates; null if filtered.")
    removed_by: list[str] = Field(description="Filters and rules that removed it.")
    stock: str
    score: float | None
    last_shown_score: float | None
    gap: float | None = Field(description="How far its score is below the last item shown.")
    strategy: str = Field(description="The strategy of the list it was compared with.")
    paths: list[PathOut] = Field(
        default_factory=list, description="Paths that would explain it, if any."
    )


class ExplanationOut(BaseModel):
    customer_id: str
    product_id: str
    degraded: bool = False
    paths: list[PathOut]


class EventsAccepted(BaseModel):
    accepted: int
    event_ids: list[str]
    durable: bool = Field(description="Always true: the events were on disk before this answer.")


class UpsertOut(BaseModel):
    kind: str
    rows_written: int
    run_id: str = Field(description="The IngestRun node recording this change.")
    warnings: list[str] = Field(default_factory=list)


class RuleOut(BaseModel):
    rule_id: str
    action: str
    target_kind: str
    target_id: str
    surface: str | None
    segment: str | None
    weight: float | None
    position: int
    note: str


class CampaignRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"segment": "consumer", "k": 5}]}
    )

    segment: str = Field(min_length=1, max_length=200, description="Customers of this segment.")
    k: int = Field(5, ge=1, le=50, description="Products per customer.")
    surface: Surface = Field("email", description="Whose ranking weights to use.")


class CampaignJob(BaseModel):
    job_id: str
    segment: str
    k: int
    surface: str
    status: Literal["queued", "running", "done", "failed"]
    customers_total: int
    customers_done: int
    progress: float = Field(description="0 to 1.")
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    exports: dict[str, str] = Field(
        default_factory=dict, description="Download links per format once done (csv, json)."
    )


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "unavailable"]
    neo4j: str
    detail: str | None = None
    model_version: str | None = None
    snapshot_age_s: float | None = None
    events_pending: int | None = None
    process_id: int = Field(description="The API process that answered (one per worker).")


class Health(BaseModel):
    status: str
