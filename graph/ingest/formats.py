"""The input format (DESIGN.md, "Input format"): one spec per file, with its pydantic row type.

Rows are `TypedDict`s validated a batch at a time by pydantic-core (`TypeAdapter(list[Row])`),
which is several times faster than a model per row and reports errors as (row, column).
Cells arrive as strings (CSV) or typed values (Parquet); empty strings mean "missing".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter
from typing_extensions import TypedDict

# -- cell types --------------------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    """Times without a zone are taken as UTC, so every stored time compares with every other."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _split_ids(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split("|") if part.strip()]
    return value


def _parse_attributes(value: Any) -> Any:
    """`k=v;k=v` -> [[k, v], ...]; a malformed pair is an error naming it."""
    if not isinstance(value, str):
        return value
    pairs = []
    for chunk in value.split(";"):
        if not chunk.strip():
            continue
        key, sep, val = chunk.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise ValueError(f"attribute {chunk.strip()!r} is not key=value")
        pairs.append([key.strip(), val.strip()])
    return pairs


def _boolean(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "y", "t"}:
            return True
        if lowered in {"0", "false", "no", "n", "f"}:
            return False
    return value


def _whole_number(value: Any) -> Any:
    """Accepts '3' and '3.0' (spreadsheet exports), not '3.5'."""
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return value
        if number.is_integer():
            return int(number)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Id = Annotated[str, BeforeValidator(_strip), Field(min_length=1, max_length=200)]
Text = Annotated[str, BeforeValidator(_strip), Field(min_length=1, max_length=1000)]
Time = Annotated[datetime, AfterValidator(_aware)]
Day = date
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Count = Annotated[int, BeforeValidator(_whole_number), Field(ge=0)]
Quantity = Annotated[int, BeforeValidator(_whole_number), Field(gt=0)]
Flag = Annotated[bool, BeforeValidator(_boolean)]
IdList = Annotated[list[Id], BeforeValidator(_split_ids), Field(min_length=1)]
Attributes = Annotated[list[tuple[str, str]], BeforeValidator(_parse_attributes)]

EventType = Literal["view", "click", "add_to_cart", "purchase", "rating"]
TargetType = Literal["product", "category", "brand"]

# -- rows --------------------------------------------------------------------------------------


class CustomerRow(TypedDict):
    customer_id: Id
    segment: Id | None
    region: Id | None
    first_seen: Time | None


class CategoryRow(TypedDict):
    category_id: Id
    name: Text
    parent_id: Id | None


class ProductRow(TypedDict):
    product_id: Id
    name: Text
    category_ids: IdList
    brand: Id | None
    price: Price | None
    attributes: Attributes | None
    created_at: Time | None
    supplier_id: Id | None
    active: Flag | None


class OrderRow(TypedDict):
    order_id: Id
    customer_id: Id
    product_id: Id
    ts: Time
    quantity: Quantity
    unit_price: Price | None
    discount: Fraction | None
    channel: Id | None


class EventRow(TypedDict):
    customer_id: Id
    product_id: Id
    type: EventType
    ts: Time
    session_id: Id | None
    value: Annotated[float, Field(allow_inf_nan=False)] | None


class PromotionRow(TypedDict):
    promotion_id: Id
    name: Text
    discount_pct: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
    starts_at: Time
    ends_at: Time
    target_type: TargetType
    target_id: Id
    channel: Id | None


class StockRow(TypedDict):
    product_id: Id
    location_id: Id
    on_hand: Count
    lead_time_days: Count | None
    updated_at: Time | None


class SalesRow(TypedDict):
    product_id: Id
    location_id: Id | None
    period_start: Day
    units: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    price: Price | None
    on_promotion: Flag | None
    featured: Flag | None


class RelationRow(TypedDict):
    head_type: Id
    head_id: Id
    relation: Id
    tail_type: Id
    tail_id: Id


# -- file specs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSpec:
    """One file of the format: its columns and how its rows are validated."""

    name: str
    row_type: type
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    adapter: TypeAdapter[list[Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adapter", TypeAdapter(list[self.row_type]))  # type: ignore[name-defined]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


# Load order: a file's references point only at files before it (or at the graph).
FILES: tuple[FileSpec, ...] = (
    FileSpec("categories", CategoryRow, ("category_id", "name"), ("parent_id",)),
    FileSpec(
        "products",
        ProductRow,
        ("product_id", "name", "category_ids"),
        ("brand", "price", "attributes", "created_at", "supplier_id", "active"),
    ),
    FileSpec("customers", CustomerRow, ("customer_id",), ("segment", "region", "first_seen")),
    FileSpec(
        "orders",
        OrderRow,
        ("order_id", "customer_id", "product_id", "ts", "quantity"),
        ("unit_price", "discount", "channel"),
    ),
    FileSpec(
        "events", EventRow, ("customer_id", "product_id", "type", "ts"), ("session_id", "value")
    ),
    FileSpec(
        "promotions",
        PromotionRow,
        (
            "promotion_id",
            "name",
            "discount_pct",
            "starts_at",
            "ends_at",
            "target_type",
            "target_id",
        ),
        ("channel",),
    ),
    FileSpec(
        "stock",
        StockRow,
        ("product_id", "location_id", "on_hand"),
        ("lead_time_days", "updated_at"),
    ),
    FileSpec(
        "sales",
        SalesRow,
        ("product_id", "period_start", "units"),
        ("location_id", "price", "on_promotion", "featured"),
    ),
    FileSpec(
        "relations", RelationRow, ("head_type", "head_id", "relation", "tail_type", "tail_id")
    ),
)

SPECS: dict[str, FileSpec] = {spec.name: spec for spec in FILES}

#: Column names that carry personal data: never stored, and named in the warning when present.
PERSONAL_COLUMNS = frozenset(
    {
        "name",
        "customer_name",
        "first_name",
        "last_name",
        "full_name",
        "email",
        "e_mail",
        "phone",
        "phone_number",
        "mobile",
        "address",
        "street",
        "postal_code",
        "zip",
        "zip_code",
        "city",
        "birth_date",
        "date_of_birth",
    }
)

#: Node labels a `relations` row may name by type, with their key; any other type is an Entity.
RELATION_LABELS: dict[str, tuple[str, str]] = {
    "product": ("Product", "product_id"),
    "category": ("Category", "category_id"),
    "brand": ("Brand", "brand_id"),
    "customer": ("Customer", "customer_id"),
    "supplier": ("Supplier", "supplier_id"),
    "location": ("Location", "location_id"),
    "attribute": ("Attribute", "attribute_id"),
}
