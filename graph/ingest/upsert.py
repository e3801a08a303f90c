"""Catalogue, stock and promotion upserts (the API's write path), through the ingestion machinery.

A request is a list of rows shaped like the input format's rows (docs/data-format.md), as JSON
objects. It is checked exactly as `kgrec ingest` checks a file: the same pydantic row types
(graph/ingest/formats.py), the same reference and cross-row rules (`RowRules`: a stock row's
product must be in the graph or in the same request, a promotion's target must exist, ...) and
the same idempotent Cypher writes (`GraphWriter`). Two things differ, because a request is not
an export: a field outside the format is refused (more likely a typo than an extra column), and
the whole request is written in one transaction, with its `IngestRun`, or not at all.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import neo4j
from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

from graph.cypher import load_cypher
from graph.errors import GraphUnavailable, ValidationFailed
from graph.ingest.formats import PERSONAL_COLUMNS, SPECS
from graph.ingest.service import (
    FileReport,
    GraphWriter,
    IngestReport,
    RowRules,
    run_properties,
)
from graph.ingest.validation import ErrorCollector, References, RowError, check_types

#: Rows one request may hold (all kinds together): a request is one transaction.
MAX_ROWS = 10_000
#: Rows per write query inside the request's transaction (the load's default batch).
WRITE_BATCH = 5_000
#: Errors returned in full; every error is still counted.
LISTED_ERRORS = 50


class UpsertKind(StrEnum):
    """The input-format files an upsert accepts, in the order they are written."""

    categories = "categories"
    products = "products"
    promotions = "promotions"
    stock = "stock"
    relations = "relations"


_ORDER = list(UpsertKind)

#: One valid row per kind, for API documentation (they fit the tests' tiny shop).
EXAMPLES: dict[UpsertKind, list[dict[str, Any]]] = {
    UpsertKind.categories: [
        {"category_id": "notebooks", "name": "Notebooks", "parent_id": "paper"}
    ],
    UpsertKind.products: [
        {
            "product_id": "P1",
            "name": "Copy paper A4, 500 sheets",
            "category_ids": ["paper"],
            "brand": "Navigator",
            "price": 5.49,
            "attributes": {"size": "A4", "weight": "80g"},
            "active": True,
        }
    ],
    UpsertKind.promotions: [
        {
            "promotion_id": "PR9",
            "name": "Paper month",
            "discount_pct": 12.5,
            "starts_at": "2024-09-01T00:00:00Z",
            "ends_at": "2024-09-30T23:59:59Z",
            "target_type": "product",
            "target_id": "P1",
        }
    ],
    UpsertKind.stock: [
        {
            "product_id": "P1",
            "location_id": "W1",
            "on_hand": 80,
            "lead_time_days": 7,
            "updated_at": "2024-09-02T08:00:00Z",
        }
    ],
    UpsertKind.relations: [
        {
            "head_type": "product",
            "head_id": "P1",
            "relation": "made_of",
            "tail_type": "material",
            "tail_id": "recycled paper",
        }
    ],
}


def columns(kind: UpsertKind) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (required, optional) fields of a row of `kind`."""
    spec = SPECS[kind.value]
    return spec.required, spec.optional


@dataclass(frozen=True)
class UpsertError:
    """One reason a request was refused: which row (0-based index) and field, the value, why."""

    kind: str | None
    index: int | None
    field: str | None
    value: Any
    reason: str
    code: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "index": self.index,
            "field": self.field,
            "value": self.value,
            "reason": self.reason,
        }

    def describe(self) -> str:
        where = self.kind or "request"
        if self.index is not None:
            where += f"[{self.index}]"
        if self.field:
            where += f".{self.field}"
        shown = "" if self.value is None else f" (value {str(self.value)[:80]!r})"
        return f"{where}{shown}: {self.reason}"


class UpsertRejected(ValidationFailed):
    """An upsert refused: some rows are bad (or the request is malformed); nothing was written."""

    def __init__(
        self, errors: list[UpsertError], *, total: int | None = None, rows_rejected: int = 0
    ) -> None:
        self.upsert_errors = errors
        self.errors: list[dict[str, Any]] = [error.as_dict() for error in errors]
        self.error_total = len(errors) if total is None else total
        self.rows_rejected = rows_rejected
        lines = [
            f"{self.error_total} error(s)"
            + (f" in {rows_rejected} row(s)" if rows_rejected else "")
            + ":"
        ]
        lines += [f"  {error.describe()}" for error in errors]
        if self.error_total > len(errors):
            lines.append(f"  ... and {self.error_total - len(errors)} more")
        lines.append("Nothing was written: the graph is unchanged.")
        self.summary = "\n".join(lines)
        super().__init__(self.summary)


@dataclass(frozen=True)
class UpsertResult:
    """What an upsert wrote: rows per kind, the lineage run, and notes (e.g. repeated ids)."""

    kind: str
    rows_written: int
    run_id: str
    rows_by_kind: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def upsert(
    driver: neo4j.Driver,
    *,
    database: str,
    kind: UpsertKind,
    rows: list[dict[str, Any]],
    source: str = "api",
    max_rows: int = MAX_ROWS,
) -> UpsertResult:
    """Validates `rows` of one kind like a load would, then writes them all or nothing.

    Raises:
        UpsertRejected: a row is bad, has a field outside the format, or the request is empty
            or over `max_rows`; `errors` lists {kind, index, field, value, reason}.
        GraphUnavailable: Neo4j could not be reached or the write could not commit.
    """
    return upsert_many(
        driver, database=database, rows_by_kind={kind: rows}, source=source, max_rows=max_rows
    )


def upsert_many(
    driver: neo4j.Driver,
    *,
    database: str,
    rows_by_kind: Mapping[UpsertKind | str, list[dict[str, Any]]],
    source: str = "api",
    max_rows: int = MAX_ROWS,
) -> UpsertResult:
    """Several kinds in one transaction (e.g. new products and their stock), in load order.

    Later kinds may refer to ids of earlier ones in the same request, as files of one load may.
    """
    started_at = datetime.now(UTC)
    kinds = _kinds(rows_by_kind)
    total = sum(len(rows) for rows in rows_by_kind.values())
    if total == 0:
        raise UpsertRejected([_request_error("no rows: send a list of at least one row")])
    if total > max_rows:
        raise UpsertRejected(
            [
                _request_error(
                    f"{total} rows are more than the {max_rows} one request may hold; "
                    "split them over several requests (each is applied on its own)",
                    value=total,
                )
            ]
        )
    try:
        clean, warnings = _validate(driver, database, kinds, rows_by_kind)
        report = IngestReport(
            run_id=f"upsert-{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
            source=f"{source}:{'+'.join(kind.value for kind in kinds)}",
            content_hash=_request_hash(kinds, rows_by_kind),
            mode="atomic",
            dry_run=False,
            status="succeeded",
            files={
                kind.value: FileReport(rows=len(clean[kind]), loaded=len(clean[kind]))
                for kind in kinds
            },
            warnings=warnings,
            started_at=started_at,
        )
        _write(driver, database, kinds, clean, report)
    except (ServiceUnavailable, SessionExpired, TransientError) as exc:
        raise GraphUnavailable(
            f"Neo4j could not complete the upsert ({exc}); nothing was written: send it again"
        ) from exc
    return UpsertResult(
        kind="+".join(kind.value for kind in kinds),
        rows_written=sum(len(rows) for rows in clean.values()),
        run_id=report.run_id,
        rows_by_kind={kind.value: len(clean[kind]) for kind in kinds},
        warnings=warnings,
    )


# -- validation --------------------------------------------------------------------------------


def _kinds(rows_by_kind: Mapping[UpsertKind | str, list[dict[str, Any]]]) -> list[UpsertKind]:
    unknown = [str(kind) for kind in rows_by_kind if kind not in set(_ORDER)]
    if unknown:
        allowed = ", ".join(_ORDER)
        raise UpsertRejected(
            [
                _request_error(f"unknown kind {name!r}: expected one of {allowed}")
                for name in unknown
            ]
        )
    return [kind for kind in _ORDER if kind in rows_by_kind]


def _request_error(reason: str, value: Any = None) -> UpsertError:
    return UpsertError(None, None, None, value, reason, "request")


def _validate(
    driver: neo4j.Driver,
    database: str,
    kinds: list[UpsertKind],
    rows_by_kind: Mapping[UpsertKind | str, list[dict[str, Any]]],
) -> tuple[dict[UpsertKind, list[dict[str, Any]]], list[str]]:
    """The clean rows per kind, and the rules' warnings; any error raises `UpsertRejected`."""
    rules = RowRules(References(driver, database))
    collector = ErrorCollector(keep=LISTED_ERRORS)
    rejected = 0
    clean: dict[UpsertKind, list[dict[str, Any]]] = {}
    for kind in kinds:
        spec = SPECS[kind.value]
        errors: dict[int, list[RowError]] = {}
        indexes: list[int] = []
        cells: list[dict[str, Any]] = []
        for index, row in enumerate(rows_by_kind[kind]):
            if not isinstance(row, dict):
                errors[index] = [
                    RowError(
                        kind.value,
                        index,
                        None,
                        _shown(row),
                        "a row must be a JSON object",
                        "not_an_object",
                    )
                ]
                continue
            for name in row:
                if name not in spec.columns:
                    errors.setdefault(index, []).append(_unknown_field(kind, index, str(name)))
            indexes.append(index)
            cells.append({name: _cell(kind, name, row.get(name)) for name in spec.columns})
        good, type_errors = check_types(spec, kind.value, indexes, cells)
        for index, row_errors in type_errors.items():
            errors.setdefault(index, []).extend(row_errors)
        rules.prefetch(kind.value, [row for _, row in good])
        for index, row in good:
            for error in rules.check(kind.value, kind.value, index, row):
                errors.setdefault(index, []).append(error)
        rules.accept(kind.value, [row for index, row in good if index not in errors])
        for index, error in rules.finish_file(kind.value, kind.value):
            errors.setdefault(index, []).append(error)
        for index in sorted(errors):
            for error in errors[index]:
                collector.add(error)
        rejected += len(errors)
        clean[kind] = [row for index, row in good if index not in errors]
    if collector.total:
        raise UpsertRejected(
            [_as_upsert_error(error) for error in collector.first],
            total=collector.total,
            rows_rejected=rejected,
        )
    return clean, rules.warnings()


def _unknown_field(kind: UpsertKind, index: int, name: str) -> RowError:
    spec = SPECS[kind.value]
    normalised = name.strip().lower().replace(" ", "_").replace("-", "_")
    personal = (
        "; it looks like personal data, which is never stored"
        if normalised in PERSONAL_COLUMNS
        else ""
    )
    return RowError(
        kind.value,
        index,
        name,
        None,
        f"unknown field {name!r}{personal}; a {kind.value} row has "
        f"{', '.join(spec.required)}"
        + (f" and may have {', '.join(spec.optional)}" if spec.optional else ""),
        "unknown_field",
    )


def _cell(kind: UpsertKind, name: str, value: Any) -> Any:
    """A JSON value as the row types take it: '' is missing (as in a CSV); attributes a map."""
    if value == "":
        return None
    if kind is UpsertKind.products and name == "attributes" and isinstance(value, dict):
        return list(value.items())
    return value


def _as_upsert_error(error: RowError) -> UpsertError:
    return UpsertError(
        error.file, error.line, error.column, _shown(error.value), error.reason, error.kind
    )


def _shown(value: Any) -> Any:
    """A value an error can carry back as JSON: scalars as they are, anything else as text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


# -- writing -----------------------------------------------------------------------------------


def _write(
    driver: neo4j.Driver,
    database: str,
    kinds: list[UpsertKind],
    clean: dict[UpsertKind, list[dict[str, Any]]],
    report: IngestReport,
) -> None:
    """All rows and the `IngestRun` in one transaction: committed together or not at all."""
    with driver.session(database=database) as session, session.begin_transaction() as tx:
        writer = GraphWriter(driver, database, transaction=tx)
        for kind in kinds:
            rows = clean[kind]
            for start in range(0, len(rows), WRITE_BATCH):
                writer.write(kind.value, rows[start : start + WRITE_BATCH])
        report.ended_at = datetime.now(UTC)
        tx.run(
            load_cypher("graph.ingest.cypher", "ingest_run"), {"run": run_properties(report)}
        ).consume()
        tx.commit()


def _request_hash(
    kinds: list[UpsertKind], rows_by_kind: Mapping[UpsertKind | str, list[dict[str, Any]]]
) -> str:
    """SHA-256 of the request's rows as canonical JSON: the same request, the same hash."""
    body = json.dumps(
        {kind.value: rows_by_kind[kind] for kind in kinds}, sort_keys=True, default=str
    )
    return f"sha256:{hashlib.sha256(body.encode()).hexdigest()}"
