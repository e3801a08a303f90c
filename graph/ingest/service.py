"""`kgrec ingest`: validate a dataset folder, then write it to Neo4j in batches, with lineage.

Two passes over the files, both streaming:

1. **Validate** every row (types, values, references, cross-row rules). Errors are collected
   with file, line, column, value and reason. In the default atomic mode any error stops the
   load here, before anything is written: the graph is unchanged. With `quarantine`, bad rows
   are written to a rejects file and skipped by the second pass. `dry_run` stops after this.
2. **Write** the good rows with batched `UNWIND ... MERGE` on constrained keys, then derive
   `PURCHASED` for the customers whose orders were loaded, and record an `IngestRun`.

Every write is an idempotent MERGE/SET (rules in docs/data-format.md), so a load that was
interrupted is finished by running it again. A load killed outright (SIGKILL, power loss) cannot
record its end: its `IngestRun` stays `status: "running"` with no `ended_at`, and names the `host`
and `pid` that ran it, so an operator can tell it from a load still in progress.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import neo4j

from graph.cypher import load_cypher
from graph.errors import ValidationFailed
from graph.ingest.formats import PERSONAL_COLUMNS, RELATION_LABELS
from graph.ingest.reader import DatasetFile, content_hash, find_files, iter_batches, read_header
from graph.ingest.validation import (
    ErrorCollector,
    References,
    RowError,
    check_types,
    unknown_reference,
)
from graph.settings import REPOSITORY_ROOT

Mode = Literal["atomic", "quarantine"]
#: Where a sales row without a location is counted: the whole shop.
ALL_LOCATIONS = "ALL"
#: Event type -> relationship type (an allow-list: relationship types never come from input).
EVENT_RELATIONSHIPS = {
    "view": "VIEWED",
    "click": "CLICKED",
    "add_to_cart": "ADDED_TO_CART",
    "purchase": "PURCHASE_EVENT",
    "rating": "RATED",
}
PROMOTION_TARGETS = {kind: RELATION_LABELS[kind] for kind in ("product", "category", "brand")}


class ProgressSink:
    """Receives progress; the CLI draws a bar, library callers get nothing printed."""

    def start(self, description: str, total: int) -> None:
        return None

    def advance(self, rows: int) -> None:
        return None

    def message(self, text: str) -> None:
        return None


@dataclass
class FileReport:
    rows: int = 0
    rejected: int = 0
    loaded: int = 0
    ignored_columns: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    """What a load did: per-file counts, errors (first ones in full, all counted), lineage."""

    run_id: str
    source: str
    content_hash: str
    mode: Mode
    dry_run: bool
    status: str = "validating"
    files: dict[str, FileReport] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rejects_file: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    validate_seconds: float = 0.0
    write_seconds: float = 0.0

    @property
    def error_total(self) -> int:
        return sum(self.error_counts.values())

    @property
    def rows_rejected(self) -> int:
        return sum(f.rejected for f in self.files.values())

    def summary(self, listed: int = 20) -> str:
        """Readable report of the errors: the first `listed`, then counts per reason."""
        lines = [f"{self.error_total} error(s) in {self.rows_rejected} row(s) of {self.source}:"]
        lines += [f"  {error.describe()}" for error in self.errors[:listed]]
        if self.error_total > min(listed, len(self.errors)):
            lines.append(f"  ... and {self.error_total - min(listed, len(self.errors))} more")
        lines.append("Errors per file, column and reason:")
        lines += [f"  {count:>8}  {key}" for key, count in sorted(self.error_counts.items())]
        return "\n".join(lines)


@dataclass
class IngestOptions:
    mode: Mode = "atomic"
    dry_run: bool = False
    batch_size: int = 5_000
    listed_errors: int = 50
    rejects_dir: Path | None = None


class Ingestor:
    """Loads dataset folders into the graph behind `driver`."""

    def __init__(
        self,
        driver: neo4j.Driver,
        *,
        database: str,
        options: IngestOptions | None = None,
        progress: ProgressSink | None = None,
    ) -> None:
        self.driver = driver
        self.database = database
        self.options = options or IngestOptions()
        self.progress = progress or ProgressSink()

    # -- the two passes --------------------------------------------------------------------

    def run(self, folder: Path) -> IngestReport:
        """Validates and (unless told otherwise) writes `folder`; returns the report.

        Raises:
            ValidationFailed: the folder is unusable, or (atomic mode) any row is bad; the
                exception's `report` attribute holds the full report.
        """
        folder = folder.resolve()
        files = find_files(folder)
        report = IngestReport(
            run_id=f"ingest-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
            source=str(folder),
            content_hash=content_hash(files),
            mode=self.options.mode,
            dry_run=self.options.dry_run,
        )
        began = time.monotonic()
        collector = ErrorCollector(keep=self.options.listed_errors)
        bad_lines = self._validate(files, report, collector)
        report.validate_seconds = time.monotonic() - began
        report.errors = collector.first
        report.error_counts = {
            f"{file}.{column}: {kind}": n for (file, column, kind), n in collector.counts.items()
        }
        if collector.total and self.options.mode == "atomic":
            report.status = "rejected"
            report.ended_at = datetime.now(UTC)
            raise IngestRejected(report)
        if self.options.dry_run:
            report.status = "validated"
            report.ended_at = datetime.now(UTC)
            return report
        began = time.monotonic()
        self._write(files, report, bad_lines)
        report.write_seconds = time.monotonic() - began
        return report

    def _validate(
        self, files: list[DatasetFile], report: IngestReport, collector: ErrorCollector
    ) -> dict[str, set[int]]:
        references = References(self.driver, self.database)
        rules = RowRules(references)
        bad_lines: dict[str, set[int]] = defaultdict(set)
        rejects = _RejectsWriter(self._rejects_path(report)) if self._quarantine else None
        try:
            for file in files:
                file_report = report.files.setdefault(file.spec.name, FileReport())
                columns = self._check_header(file, file_report, report)
                self.progress.start(f"validate {file.path.name}", _count_rows(file))
                for lines, raw in iter_batches(file, columns, self.options.batch_size):
                    file_report.rows += len(lines)
                    originals = [dict(row) for row in raw] if rejects else None
                    good, errors = check_types(file.spec, file.path.name, lines, raw)
                    for line, row in good:
                        for error in rules.check(file.spec.name, file.path.name, line, row):
                            errors.setdefault(line, []).append(error)
                    rules.accept(file.spec.name, [row for line, row in good if line not in errors])
                    self._record(file, file_report, lines, errors, collector, bad_lines)
                    if rejects and originals is not None and errors:
                        rejects.write(file.path.name, lines, originals, errors)
                    self.progress.advance(len(lines))
                for line, error in rules.finish_file(file.spec.name, file.path.name):
                    self._record(file, file_report, [line], {line: [error]}, collector, bad_lines)
                    if rejects:
                        rejects.write(file.path.name, [line], [{}], {line: [error]})
        finally:
            if rejects:
                rejects.close()
                if rejects.rows:
                    report.rejects_file = str(rejects.path)
                else:
                    rejects.path.unlink(missing_ok=True)
        report.warnings.extend(rules.warnings())
        return bad_lines

    def _record(
        self,
        file: DatasetFile,
        file_report: FileReport,
        lines: list[int],
        errors: dict[int, list[RowError]],
        collector: ErrorCollector,
        bad_lines: dict[str, set[int]],
    ) -> None:
        for line, row_errors in errors.items():
            if line in bad_lines[file.spec.name]:
                continue  # a row refused later (e.g. a category cycle) is counted once
            bad_lines[file.spec.name].add(line)
            file_report.rejected += 1
            for error in row_errors:
                collector.add(error)

    def _check_header(
        self, file: DatasetFile, file_report: FileReport, report: IngestReport
    ) -> list[str]:
        header = read_header(file)
        missing = [name for name in file.spec.required if name not in header]
        if missing:
            raise ValidationFailed(
                f"{file.path}: line 1: missing required column(s) {', '.join(missing)}; "
                f"the {file.spec.name} file needs {', '.join(file.spec.required)}"
                + (f" and may have {', '.join(file.spec.optional)}" if file.spec.optional else "")
            )
        ignored = [name for name in header if name not in file.spec.columns]
        if ignored:
            personal = [name for name in ignored if _normalise(name) in PERSONAL_COLUMNS]
            file_report.ignored_columns = ignored
            note = (
                f" ({', '.join(personal)} hold personal data and are never stored)"
                if personal
                else ""
            )
            listed = ", ".join(ignored)
            report.warnings.append(
                f"{file.path.name}: ignoring column(s) outside the format: {listed}{note}"
            )
        return list(file.spec.columns)

    @property
    def _quarantine(self) -> bool:
        return self.options.mode == "quarantine"

    def _rejects_path(self, report: IngestReport) -> Path:
        folder = self.options.rejects_dir or Path(report.source).parent
        return folder / f"{report.run_id}.rejects.csv"

    # -- writing ---------------------------------------------------------------------------

    def _write(
        self, files: list[DatasetFile], report: IngestReport, bad_lines: dict[str, set[int]]
    ) -> None:
        report.status = "running"
        self._save_run(report)
        writer = GraphWriter(self.driver, self.database)
        try:
            for file in files:
                file_report = report.files[file.spec.name]
                skip = bad_lines.get(file.spec.name, set())
                self.progress.start(
                    f"write {file.path.name}", file_report.rows - file_report.rejected
                )
                for lines, raw in iter_batches(
                    file, list(file.spec.columns), self.options.batch_size
                ):
                    kept = [
                        (line, row)
                        for line, row in zip(lines, raw, strict=True)
                        if line not in skip
                    ]
                    if not kept:
                        continue
                    good, errors = check_types(
                        file.spec,
                        file.path.name,
                        [line for line, _ in kept],
                        [row for _, row in kept],
                    )
                    if errors:  # the file changed between the passes
                        raise ValidationFailed(
                            f"{file.path} changed while it was being loaded "
                            f"({next(iter(errors.values()))[0].describe()}); run the load again"
                        )
                    rows = [row for _, row in good]
                    writer.write(file.spec.name, rows)
                    file_report.loaded += len(rows)
                    self.progress.advance(len(rows))
            if writer.touched_customers:
                self.progress.start("derive PURCHASED", len(writer.touched_customers))
                writer.derive_purchased(self.progress.advance)
        except BaseException as exc:
            report.status = "failed"
            report.ended_at = datetime.now(UTC)
            report.warnings.append(f"load failed: {exc}; rerun it to finish (loads are idempotent)")
            self._save_run(report)
            raise
        report.status = "succeeded"
        report.ended_at = datetime.now(UTC)
        self._save_run(report)

    def _save_run(self, report: IngestReport) -> None:
        self.driver.execute_query(
            load_cypher("graph.ingest.cypher", "ingest_run"),
            {"run": run_properties(report)},
            database_=self.database,
        )


def run_properties(report: IngestReport) -> dict[str, Any]:
    """The `IngestRun` node's properties for a report (loads and API upserts alike)."""
    return {
        "run_id": report.run_id,
        "source": report.source,
        "content_hash": report.content_hash,
        "mode": report.mode,
        "status": report.status,
        "started_at": report.started_at,
        "ended_at": report.ended_at,
        "code_version": code_version(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "files": sorted(report.files),
        "rows": json.dumps({name: f.rows for name, f in report.files.items()}, sort_keys=True),
        "rows_loaded": json.dumps({n: f.loaded for n, f in report.files.items()}, sort_keys=True),
        "rows_rejected": report.rows_rejected,
        "errors": report.error_total,
        "error_counts": json.dumps(report.error_counts, sort_keys=True),
        "rejects_file": report.rejects_file,
    }


class IngestRejected(ValidationFailed):
    """Atomic load refused: some rows are bad; nothing was written."""

    def __init__(self, report: IngestReport) -> None:
        super().__init__(
            report.summary() + "\nNothing was written: the graph is unchanged. "
            "Fix the rows, or load the good ones with --quarantine."
        )
        self.report = report


# -- cross-row rules ---------------------------------------------------------------------------


class RowRules:
    """Reference checks and rules that need more than one row (shared by loads and upserts)."""

    def __init__(self, references: References) -> None:
        self.refs = references
        self.category_parents: list[tuple[int, str, str | None]] = []
        self.order_customer: dict[str, str] = {}
        self.product_names: dict[str, set[str]] = {}
        self.duplicate_keys: Counter[str] = Counter()
        self._seen_keys: dict[str, set[str]] = defaultdict(set)

    def check(self, name: str, label: str, line: int, row: dict[str, Any]) -> list[RowError]:
        errors: list[RowError] = []

        def require(kind: str, column: str, ids: Iterable[str]) -> None:
            for missing in sorted(self.refs.unknown(kind, list(ids))):
                errors.append(unknown_reference(label, line, column, kind, missing))

        if name == "categories":
            self.category_parents.append((line, row["category_id"], row["parent_id"]))
        elif name == "products":
            require("category", "category_ids", row["category_ids"])
        elif name == "orders":
            require("product", "product_id", [row["product_id"]])
            owner = self.order_customer.setdefault(row["order_id"], row["customer_id"])
            if owner != row["customer_id"]:
                errors.append(
                    RowError(
                        label,
                        line,
                        "customer_id",
                        row["customer_id"],
                        f"order {row['order_id']!r} already belongs to customer {owner!r} "
                        "earlier in this file",
                        "order_customer_conflict",
                    )
                )
        elif name == "events":
            require("product", "product_id", [row["product_id"]])
            if row["type"] == "rating" and row["value"] is None:
                errors.append(
                    RowError(
                        label,
                        line,
                        "value",
                        None,
                        "a rating event needs a value",
                        "rating_without_value",
                    )
                )
        elif name == "promotions":
            require(row["target_type"], "target_id", [row["target_id"]])
            if row["ends_at"] < row["starts_at"]:
                errors.append(
                    RowError(
                        label,
                        line,
                        "ends_at",
                        row["ends_at"].isoformat(),
                        f"ends before it starts ({row['starts_at'].isoformat()})",
                        "ends_before_start",
                    )
                )
        elif name in ("stock", "sales"):
            require("product", "product_id", [row["product_id"]])
        elif name == "relations":
            for side in ("head", "tail"):
                kind = row[f"{side}_type"].lower()
                if kind in RELATION_LABELS:
                    require(kind, f"{side}_id", [row[f"{side}_id"]])
        return errors

    def prefetch(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Asks the graph once about every id `rows` name, so `check` sends no query per row."""
        wanted: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            if name == "categories" and row["parent_id"] is not None:
                wanted["category"].add(row["parent_id"])
            elif name == "products":
                wanted["category"].update(row["category_ids"])
            elif name in ("orders", "events", "stock", "sales"):
                wanted["product"].add(row["product_id"])
            elif name == "promotions":
                wanted[row["target_type"]].add(row["target_id"])
            elif name == "relations":
                for side in ("head", "tail"):
                    kind = row[f"{side}_type"].lower()
                    if kind in RELATION_LABELS:
                        wanted[kind].add(row[f"{side}_id"])
        for kind, ids in wanted.items():
            self.refs.unknown(kind, ids)

    def accept(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Records the ids of rows that passed, for the references of later rows."""
        if name == "categories":
            self.refs.add("category", (r["category_id"] for r in rows))
        elif name == "products":
            for row in rows:
                names = self.product_names.setdefault(row["product_id"], set())
                names.add(row["name"])
                self._count_duplicate(name, row["product_id"])
            self.refs.add("product", (r["product_id"] for r in rows))
            self.refs.add("brand", (r["brand"] for r in rows if r["brand"]))
            self.refs.add("supplier", (r["supplier_id"] for r in rows if r["supplier_id"]))
            self.refs.add(
                "attribute", (f"{k}={v}" for r in rows for k, v in (r["attributes"] or []))
            )
        elif name == "customers":
            for row in rows:
                self._count_duplicate(name, row["customer_id"])
            self.refs.add("customer", (r["customer_id"] for r in rows))
        elif name in ("orders", "events"):
            self.refs.add("customer", (r["customer_id"] for r in rows))
        elif name == "stock":
            self.refs.add("location", (r["location_id"] for r in rows))

    def _count_duplicate(self, name: str, key: str) -> None:
        if key in self._seen_keys[name]:
            self.duplicate_keys[name] += 1
        self._seen_keys[name].add(key)

    def finish_file(self, name: str, label: str) -> list[tuple[int, RowError]]:
        """Checks that need the whole file: category parents (they may come later) and cycles."""
        if name != "categories":
            return []
        errors: list[tuple[int, RowError]] = []
        parents = {cid: parent for _, cid, parent in self.category_parents}
        for line, cid, parent in self.category_parents:
            if parent is None:
                continue
            if self.refs.unknown("category", [parent]):
                errors.append(
                    (line, unknown_reference(label, line, "parent_id", "category", parent))
                )
                continue
            seen: set[str] = {cid}
            current: str | None = parent
            while current is not None and current in parents:
                if current in seen:
                    errors.append(
                        (
                            line,
                            RowError(
                                label,
                                line,
                                "parent_id",
                                parent,
                                f"category {cid!r} would be its own ancestor",
                                "category_cycle",
                            ),
                        )
                    )
                    break
                seen.add(current)
                current = parents[current]
        refused = {e.line for _, e in errors}
        self.refs.loaded["category"] -= {
            cid for line, cid, _ in self.category_parents if line in refused
        }
        return errors

    def warnings(self) -> list[str]:
        notes = []
        renamed = sum(1 for names in self.product_names.values() if len(names) > 1)
        if renamed:
            notes.append(
                f"products: {renamed} product id(s) carry several names; the last row's name is "
                "the product's name and every name is kept in its `names` list"
            )
        for name, count in sorted(self.duplicate_keys.items()):
            notes.append(f"{name}: {count} row(s) repeat an id seen earlier; later rows win")
        return notes


# -- writing -----------------------------------------------------------------------------------


class GraphWriter:
    """Turns validated rows into batched, idempotent Cypher writes.

    With `transaction`, writes go through it instead of one auto-committed query each, so a
    caller can commit several files at once (API upserts). Reads (orders, events) still use the
    driver and would not see the transaction's writes: only files whose writes need no reads
    (categories, products, promotions, stock, sales, relations) may be written that way.
    """

    def __init__(
        self, driver: neo4j.Driver, database: str, transaction: neo4j.Transaction | None = None
    ) -> None:
        self.driver = driver
        self.database = database
        self.transaction = transaction
        self.touched_customers: set[str] = set()
        # Orders and (order, product) pairs written by earlier batches of this load: their
        # values add up instead of being set (a repeated line must never lose quantity).
        self._written_orders: set[str] = set()
        self._written_lines: set[tuple[str, str]] = set()
        self._customer_first_seen: dict[str, int] = {}  # earliest time this load has written

    def _execute(self, query: str, **params: Any) -> None:
        if any(isinstance(value, list) and not value for value in params.values()):
            return  # nothing to write
        if self.transaction is not None:
            self.transaction.run(query, params).consume()
        else:
            self.driver.execute_query(query, params, database_=self.database)

    @staticmethod
    def _query(name: str, **placeholders: str) -> str:
        text = load_cypher("graph.ingest.cypher", name)
        for key, value in placeholders.items():
            text = text.replace(f"<<{key}>>", value)
        return text

    def write(self, name: str, rows: list[dict[str, Any]]) -> None:
        # Datetimes travel as epoch milliseconds and dates as ISO text: the driver packs
        # datetime objects an order of magnitude slower (docs/benchmarks.md).
        for row in rows:
            for key, value in row.items():
                if isinstance(value, datetime):
                    row[key] = _epoch_millis(value)
                elif isinstance(value, date):
                    row[key] = value.isoformat()
        getattr(self, f"_write_{name}")(rows)

    def _write_categories(self, rows: list[dict[str, Any]]) -> None:
        self._execute(self._query("categories"), rows=rows)

    def _write_products(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row["attributes"] is not None:
                row["attributes"] = [list(pair) for pair in row["attributes"]]
        self._execute(self._query("products"), rows=rows)

    def _write_customers(self, rows: list[dict[str, Any]]) -> None:
        self._execute(self._query("customers"), rows=rows)

    def _write_orders(self, rows: list[dict[str, Any]]) -> None:
        orders: dict[str, dict[str, Any]] = {}
        lines: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            order = orders.setdefault(
                row["order_id"],
                {
                    "order_id": row["order_id"],
                    "customer_id": row["customer_id"],
                    "ts": row["ts"],
                    "channel": row["channel"],
                },
            )
            order["ts"] = min(order["ts"], row["ts"])
            order["channel"] = row["channel"] or order["channel"]
            line = lines.setdefault(
                (row["order_id"], row["product_id"]),
                {
                    "order_id": row["order_id"],
                    "product_id": row["product_id"],
                    "values": {
                        "quantity": 0,
                        "gross": 0.0,
                        "priced_quantity": 0,
                        "discounted": 0.0,
                        "lines": 0,
                    },
                },
            )
            values = line["values"]
            quantity = row["quantity"]
            values["quantity"] += quantity
            values["lines"] += 1
            if row["unit_price"] is not None:
                values["gross"] += quantity * row["unit_price"]
                values["priced_quantity"] += quantity
            if row["discount"] is not None:
                values["discounted"] += quantity * row["discount"]
        for line in lines.values():
            values = line["values"]
            values["unit_price"] = (
                values["gross"] / values["priced_quantity"] if values["priced_quantity"] else None
            )
            values["discount"] = values["discounted"] / values["quantity"]
        first_seen: dict[str, int] = {}
        for order in orders.values():
            customer = order["customer_id"]
            first_seen[customer] = min(first_seen.get(customer, order["ts"]), order["ts"])
        self._touch_customers(first_seen)
        # Orders this load has not written yet may still be in the graph from an earlier load.
        fresh = [order_id for order_id in orders if order_id not in self._written_orders]
        known = self._known_orders(fresh)
        created = {order_id for order_id in fresh if order_id not in known}
        for order_id, order in orders.items():
            order["seen"] = order_id in self._written_orders
        self._execute(
            self._query("orders_new"), rows=[o for i, o in orders.items() if i in created]
        )
        self._execute(
            self._query("orders"), rows=[o for i, o in orders.items() if i not in created]
        )
        new_lines: list[dict[str, Any]] = []
        other_lines: list[dict[str, Any]] = []
        for pair, line in lines.items():
            line["seen"] = pair in self._written_lines
            (new_lines if pair[0] in created else other_lines).append(line)
        self._execute(self._query("order_lines_new"), rows=new_lines)
        self._execute(self._query("order_lines"), rows=other_lines)
        self._written_orders.update(orders)
        self._written_lines.update(lines)
        self.touched_customers.update(order["customer_id"] for order in orders.values())

    def _touch_customers(self, first_seen: dict[str, int]) -> None:
        """Creates customers and lowers first_seen, once per customer and load where possible:
        a customer is sent again only when a batch holds an earlier time for it."""
        earlier = {
            customer: ts
            for customer, ts in sorted(first_seen.items())
            if ts < self._customer_first_seen.get(customer, ts + 1)
        }
        rows = [{"customer_id": customer, "ts": ts} for customer, ts in earlier.items()]
        self._execute(self._query("customers_touch"), rows=rows)
        self._customer_first_seen.update(earlier)

    def _known_orders(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        records = self.driver.execute_query(
            self._query("orders_known"),
            {"ids": ids},
            database_=self.database,
            routing_=neo4j.RoutingControl.READ,
        ).records
        return {record["id"] for record in records}

    def derive_purchased(self, advance: Callable[[int], None], batch: int = 1_000) -> None:
        customers = sorted(self.touched_customers)
        for start in range(0, len(customers), batch):
            chunk = customers[start : start + batch]
            fresh = {
                record["customer_id"]
                for record in self.driver.execute_query(
                    self._query("purchased_fresh"),
                    {"customer_ids": chunk},
                    database_=self.database,
                    routing_=neo4j.RoutingControl.READ,
                ).records
            }
            self._execute(self._query("purchased_new"), customer_ids=sorted(fresh))
            self._execute(
                self._query("purchased"), customer_ids=[c for c in chunk if c not in fresh]
            )
            advance(len(chunk))

    def _write_events(self, rows: list[dict[str, Any]]) -> None:
        grouped: dict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
        for row in rows:
            pair = grouped[row["type"]].setdefault(
                (row["customer_id"], row["product_id"]),
                {
                    "customer_id": row["customer_id"],
                    "product_id": row["product_id"],
                    "ts": set(),
                    "value": None,
                    "value_ts": None,
                },
            )
            pair["ts"].add(row["ts"])
            if row["value"] is not None and (
                pair["value_ts"] is None or row["ts"] >= pair["value_ts"]
            ):
                pair["value"], pair["value_ts"] = row["value"], row["ts"]
        first_seen: dict[str, int] = {}
        for pairs in grouped.values():
            for pair in pairs.values():
                earliest = min(pair["ts"])
                customer = pair["customer_id"]
                first_seen[customer] = min(first_seen.get(customer, earliest), earliest)
        self._touch_customers(first_seen)
        for event_type, pairs in grouped.items():
            rel_type = EVENT_RELATIONSHIPS[event_type]
            payload = [{**p, "ts": sorted(p["ts"])} for p in pairs.values()]
            known = {
                (record["customer_id"], record["product_id"])
                for record in self.driver.execute_query(
                    self._query("interactions_known", rel_type=rel_type),
                    {"rows": [{"customer_id": c, "product_id": p} for c, p in pairs]},
                    database_=self.database,
                    routing_=neo4j.RoutingControl.READ,
                ).records
            }
            new = [row for row in payload if (row["customer_id"], row["product_id"]) not in known]
            old = [row for row in payload if (row["customer_id"], row["product_id"]) in known]
            self._execute(self._query("events_new", rel_type=rel_type), rows=new)
            self._execute(self._query("events", rel_type=rel_type), rows=old)

    def _write_promotions(self, rows: list[dict[str, Any]]) -> None:
        by_target: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_target[row["target_type"]].append(row)
        for target_type, group in by_target.items():
            label, key = PROMOTION_TARGETS[target_type]
            self._execute(self._query("promotions", target_label=label, target_key=key), rows=group)

    def _write_stock(self, rows: list[dict[str, Any]]) -> None:
        self._execute(self._query("stock"), rows=rows)

    def _write_sales(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            row["location_id"] = row["location_id"] or ALL_LOCATIONS
        self._execute(self._query("sales"), rows=rows)

    def _write_relations(self, rows: list[dict[str, Any]]) -> None:
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            head, tail = row["head_type"].lower(), row["tail_type"].lower()
            groups[(_node_kind(head), _node_kind(tail))].append(
                {**row, "head_type": head, "tail_type": tail}
            )
        for (head, tail), group in groups.items():
            query = self._query(
                "relations",
                head_match=_node_clause("h", "head", head),
                tail_match=_node_clause("t", "tail", tail),
            )
            self._execute(query, rows=group)


def _node_kind(kind: str) -> str:
    return kind if kind in RELATION_LABELS else "entity"


def _node_clause(variable: str, side: str, kind: str) -> str:
    """MATCH of a known label and key (from the allow-list); MERGE of an Entity otherwise."""
    carry = "row, h" if variable == "h" else "row, h, t"
    if kind == "entity":
        return (
            f"MERGE ({variable}:Entity {{entity_id: row.{side}_type + ':' + row.{side}_id}})\n"
            f"ON CREATE SET {variable}.type = row.{side}_type, {variable}.name = row.{side}_id\n"
            f"WITH {carry}"
        )
    label, key = RELATION_LABELS[kind]
    return f"MATCH ({variable}:{label} {{{key}: row.{side}_id}})\nWITH {carry}"


# -- helpers -----------------------------------------------------------------------------------


class _RejectsWriter:
    """The quarantine file: exactly one line per refused row, with every reason."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._handle)
        self._csv.writerow(["file", "line", "reasons", "row"])
        self.rows = 0

    def write(
        self,
        label: str,
        lines: list[int],
        originals: list[dict[str, Any]],
        errors: dict[int, list[RowError]],
    ) -> None:
        by_line = dict(zip(lines, originals, strict=True))
        for line, row_errors in sorted(errors.items()):
            original = {k: v for k, v in by_line.get(line, {}).items() if not k.startswith("__")}
            reasons = "; ".join(
                f"{e.column or 'row'}: {e.reason}" + ("" if e.value is None else f" ({e.value})")
                for e in row_errors
            )
            self._csv.writerow(
                [label, line, reasons, json.dumps(original, default=str) if original else ""]
            )
            self.rows += 1

    def close(self) -> None:
        self._handle.close()


def _epoch_millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _normalise(column: str) -> str:
    return column.strip().lower().replace(" ", "_").replace("-", "_")


def _count_rows(file: DatasetFile) -> int:
    """Rows in the file, for the progress bar (CSV: lines minus the header; cheap binary scan)."""
    if not file.is_csv:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(file.path).metadata.num_rows)
    count = 0
    with file.path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            count += chunk.count(b"\n")
    return max(count - 1, 0)


@cache
def code_version() -> str:
    """The package version, plus the git commit when run from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("kgrec")
    except PackageNotFoundError:
        release = "0+unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPOSITORY_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return release
    return f"{release}+g{commit}" if commit else release
