"""Routes the merchandiser page (`/ui`) needs beyond the serving ones: search, a product's
stock, forecast and promotions, and the model versions. Merchandiser keys (scope `explain`)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import neo4j
from fastapi import APIRouter, FastAPI, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from api.auth import ExplainAccess
from api.errors import NotFound
from api.routes import ERRORS, NOT_FOUND, ProductId, StateDep
from api.serving import ServingState
from gnn.registry import ModelVersion, Registry
from graph.cypher import load_cypher

router = APIRouter(prefix="/v1", tags=["merchandiser"])


# -- bodies ------------------------------------------------------------------------------------
class SearchHit(BaseModel):
    kind: Literal["customer", "product"]
    id: str
    detail: str = Field(description="A customer's segment or a product's name.")


class SearchOut(BaseModel):
    query: str
    customers: list[SearchHit]
    products: list[SearchHit]


class StockOut(BaseModel):
    location_id: str
    on_hand: int | None
    lead_time_days: int | None
    updated_at: datetime | None
    days_of_cover: float | None = Field(description="On hand over the forecast daily demand.")
    stockout_probability: float | None


class ForecastOut(BaseModel):
    location_id: str = Field(description='"ALL" for a product with no stock record.')
    model: str | None
    model_version: str | None
    granularity: str | None = Field(description="day or week: one value per step.")
    first_day: date | None
    horizon_days: int | None
    level: float | None = Field(description="The interval's coverage, in percent.")
    mean: list[float]
    lower: list[float]
    upper: list[float]
    days_of_cover: float | None
    stockout_probability: float | None


class PromotionOut(BaseModel):
    promotion_id: str
    name: str | None
    discount_pct: float | None
    channel: str | None
    target_type: str | None
    target_id: str | None
    starts_at: datetime | None
    ends_at: datetime | None


class ProductDetailOut(BaseModel):
    product_id: str
    name: str | None
    price: float | None
    active: bool
    categories: list[str]
    brand: str | None
    stock: list[StockOut]
    forecasts: list[ForecastOut]
    promotions: list[PromotionOut]


class ModelVersionOut(BaseModel):
    version_id: str
    model: str
    created_at: datetime
    active: bool
    val_ndcg10: float | None
    test_ndcg10: float | None
    has_embeddings: bool
    metrics: dict[str, dict[str, float]] = Field(
        description="Per split (validation, test), the whole-population metric values."
    )


class ModelsOut(BaseModel):
    active: str | None
    serving: str | None = Field(description="The version the serving snapshot was built from.")
    versions: list[ModelVersionOut]


# -- helpers -----------------------------------------------------------------------------------
def _read(state: ServingState, name: str, **params: Any) -> list[dict[str, Any]]:
    records = state.driver.execute_query(
        load_cypher("api", name),
        params,
        database_=state.database,
        routing_=neo4j.RoutingControl.READ,
    ).records
    return [{k: _native(v) for k, v in dict(r).items()} for r in records]


def _native(value: Any) -> Any:
    return value.to_native() if hasattr(value, "to_native") else value


def _split_metrics(raw: Any) -> dict[str, dict[str, float]]:
    try:
        metrics = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    out: dict[str, dict[str, float]] = {}
    for split in ("validation", "test"):
        found = metrics.get(split, {}).get("slices", {}).get("all", {}).get("metrics", {})
        values = {
            name: float(m["value"])
            for name, m in found.items()
            if isinstance(m, dict) and isinstance(m.get("value"), int | float)
        }
        if values:
            out[split] = values
    return out


def _version(v: ModelVersion) -> ModelVersionOut:
    return ModelVersionOut(
        version_id=v.version_id,
        model=v.model,
        created_at=v.created_at,
        active=v.active,
        val_ndcg10=v.val_ndcg10,
        test_ndcg10=v.test_ndcg10,
        has_embeddings=v.has_embeddings,
        metrics=_split_metrics(v.properties.get("metrics")),
    )


# -- routes ------------------------------------------------------------------------------------
@router.get("/search", response_model=SearchOut, responses=ERRORS)
def search(
    state: StateDep,
    _: ExplainAccess,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=100,
            description="A customer or product id prefix, or part of a product name.",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=50, description="At most this many of each.")] = 10,
) -> SearchOut:
    """Customers by id prefix and products by id prefix or name, for the page's search box."""
    text = q.strip()
    customers = _read(state, "ui_search_customers", q=text, limit=limit)
    products = _read(state, "ui_search_products", q=text, limit=limit)
    return SearchOut(
        query=text,
        customers=[SearchHit(kind="customer", **r) for r in customers],
        products=[SearchHit(kind="product", **r) for r in products],
    )


@router.get(
    "/products/{product_id}",
    response_model=ProductDetailOut,
    responses={**ERRORS, **NOT_FOUND},
)
def product_detail(product_id: ProductId, state: StateDep, _: ExplainAccess) -> ProductDetailOut:
    """A product for merchandisers: stock per location with days of cover, the current demand
    forecasts with their interval, and the promotions running now. 404 for an unknown id."""
    found = _read(state, "ui_product", product_id=product_id)
    if not found:
        raise NotFound(f"product {product_id!r} is not in the catalogue")
    now = datetime.now(UTC).isoformat()
    forecasts = [
        ForecastOut(
            **{**r, "mean": r["mean"] or [], "lower": r["lower"] or [], "upper": r["upper"] or []}
        )
        for r in _read(state, "ui_product_forecasts", product_id=product_id)
    ]
    return ProductDetailOut(
        **found[0],
        stock=[StockOut(**r) for r in _read(state, "ui_product_stock", product_id=product_id)],
        forecasts=forecasts,
        promotions=[
            PromotionOut(**r)
            for r in _read(state, "ui_product_promotions", product_id=product_id, now=now)
        ],
    )


@router.get("/models", response_model=ModelsOut, responses=ERRORS)
async def model_versions(state: StateDep, _: ExplainAccess) -> ModelsOut:
    """Every model version, newest first, with its metrics; which is active and which the
    serving snapshot uses."""
    registry = Registry(
        state.driver, database=state.database, root=state.settings.app.home / "models"
    )
    versions = await run_in_threadpool(registry.versions)
    active = next((v.version_id for v in versions if v.active), None)
    snapshot = state.current_snapshot
    return ModelsOut(
        active=active,
        serving=snapshot.version_id if snapshot else None,
        versions=[_version(v) for v in versions],
    )


UI_DIST = Path(__file__).resolve().parent.parent / "ui" / "dist"


def ui_dist() -> Path:
    """The built page: next to the source tree (`make ui`, editable installs), else `ui/dist`
    under the working directory (an installed package, e.g. an image that copies it there)."""
    for candidate in (UI_DIST, Path.cwd() / "ui" / "dist"):
        if (candidate / "index.html").is_file():
            return candidate
    return UI_DIST


def mount_ui(app: FastAPI, dist: Path | None = None) -> None:
    """Serves the built page at `/ui` (open: the page asks for a key); without a build, `/ui`
    says how to make one and the API works as before."""
    dist = dist or ui_dist()
    if (dist / "index.html").is_file():
        app.mount("/ui", StaticFiles(directory=dist, html=True), name="ui")
        return

    @app.get("/ui", include_in_schema=False)
    def ui_missing() -> PlainTextResponse:
        return PlainTextResponse(
            f"The merchandiser page is not built ({dist} is missing): run `make ui` "
            "(needs npm), then restart the API.",
            status_code=503,
        )
