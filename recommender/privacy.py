"""Privacy: a customer's opt-out, their erasure from every store kgrec keeps (with a receipt),
and retention pruning of old events.

Opt-out is `Customer.personalization = false`: the serving snapshot gives such a customer
non-personal lists, explanations never show them on another customer's path, and their
embedding is dropped (activations write none for them).

Erasure removes one customer from each store, in an order that keeps a background writer from
bringing them back:

1. the served-list queue of this process (in memory; `ServedLog.forget`);
2. the event logs (`KGREC_EVENTS_DIR` and its `worker-N` logs: segments and dead letters are
   rewritten without the customer's lines). A log held by another running process is asked to
   do it through a request file that names the customer by a salted hash only; its shipper
   answers before it reads its next batch, so no batch with the customer's events is in flight
   once the answer is there;
3. the graph, in one transaction: the `Customer` node with every relationship (purchases,
   views, clicks, carts, ratings, served lists, segment, region) and its embedding; their orders
   lose the link to them and stay as anonymous sales records (demand forecasting and
   co-purchase statistics count them), or are deleted with `delete_orders`; audit events about
   them (opt-outs) keep the keyed hash instead of the id; shipping cursors drop their dead
   letters;
4. model artifacts (`KGREC_HOME/models/*`): the id leaves `id_maps.json` (its row becomes
   null, so row order holds) and the customer's rows of `embeddings.npz` and `model.pt` are
   zeroed;
5. campaign exports (`KGREC_HOME/campaigns`) and ingestion rejects files (those the graph's
   `IngestRun` nodes name) lose the customer's rows;
6. the serving snapshot is reloaded (this process at once; others see the new fingerprint).

The receipt (per store, what was removed) is stored as an `AuditEvent` that names the customer
by a keyed hash (HMAC-SHA256 with `KGREC_PRIVACY_KEY`, else a random key in
`KGREC_HOME/privacy.key`): it proves the erasure of a given id to whoever holds the key,
without keeping the id.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
from pydantic import BaseModel, Field

from graph.cypher import load_cypher
from graph.errors import KgrecError
from graph.settings import AppSettings
from recommender.events import (
    DEAD_LETTER_FILE,
    ERASURE_FOLDER,
    SEGMENT_PREFIX,
    SEGMENT_SUFFIX,
    EventLog,
    EventLogBusy,
    EventShipper,
    LogErasure,
    _replace_file,
    event_log_folder,
    log_folders,
    prunable_segments,
    read_log_id,
    salted_digest,
)
from recommender.served import ServedLog

logger = logging.getLogger(__name__)

PRIVACY_KEY_FILE = "privacy.key"
#: Every erasure, by keyed hash, outside the graph and outside backups (graph/backup.py): a
#: restored backup holds customers erased since it was taken, and this ledger finds them again.
ERASURE_LEDGER_FILE = "erasures.jsonl"
#: Graph relationships that record events (ingestion's and the shipper's), pruned by retention.
#: Orders (PLACED, CONTAINS, PURCHASED) are the shop's sales history and are kept.
EVENT_RELATIONSHIPS = ("VIEWED", "CLICKED", "ADDED_TO_CART", "PURCHASE_EVENT", "RATED")


class CustomerNotFound(KgrecError):
    """No store holds the customer (never known, or already erased)."""


class PrivacyError(KgrecError):
    """An opt-out, erasure or pruning that cannot be done as asked."""


# -- the keyed hash ------------------------------------------------------------------------------


def privacy_key(app: AppSettings) -> bytes:
    """`KGREC_PRIVACY_KEY`, else the key in `KGREC_HOME/privacy.key` (created once, mode 600)."""
    if app.privacy_key is not None:
        return app.privacy_key.get_secret_value().encode()
    path = app.home.resolve() / PRIVACY_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
    return bytes.fromhex(path.read_text().strip())


def subject_digest(key: bytes, customer_id: str) -> str:
    """How receipts name a customer: `hmac-sha256:<hex>` of the id under the privacy key."""
    return "hmac-sha256:" + hmac.new(key, customer_id.encode(), hashlib.sha256).hexdigest()


# -- opt-out -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonalizationChange:
    customer_id: str
    personalization: bool
    previous: bool
    created: bool  # the customer had no node yet (their first events have not shipped)
    audit_event_id: str


def set_personalization(
    driver: neo4j.Driver,
    *,
    database: str,
    customer_id: str,
    enabled: bool,
    actor: str,
    reason: str | None = None,
) -> PersonalizationChange:
    """Opts a customer out of (or back into) personalisation, audited. An unknown customer is
    created with the flag, so events that ship later find the choice already made. Opting out
    also drops the customer's embedding; opting in gets one back at the next activation."""
    event_id = uuid.uuid4().hex
    records = driver.execute_query(
        load_cypher("recommender", "privacy_personalization"),
        customer_id=customer_id,
        enabled=enabled,
        now=datetime.now(UTC).isoformat(),
        event_id=event_id,
        actor=actor,
        reason=reason,
        database_=database,
    ).records
    record = records[0]
    return PersonalizationChange(
        customer_id=customer_id,
        personalization=enabled,
        previous=bool(record["previous"]),
        created=bool(record["created"]),
        audit_event_id=event_id,
    )


# -- erasure ---------------------------------------------------------------------------------------


class ErasureReceipt(BaseModel):
    """What an erasure removed, per store; stored as an `AuditEvent` without the customer id."""

    erasure_id: str = Field(description="Id of the erasure (the receipt's AuditEvent event_id).")
    erased_at: datetime
    subject: str = Field(
        description="The customer as a keyed hash (HMAC-SHA256 under the privacy key), never "
        "the id: it proves the erasure of an id to whoever holds the key."
    )
    stores: dict[str, dict[str, int]] = Field(
        description="Per store, what was removed (counts): graph, event_logs, served_queue, "
        "model_artifacts, campaign_exports, ingest_rejects, serving_snapshot."
    )
    notes: list[str] = Field(default_factory=list, description="What needs an operator, if any.")


@dataclass
class LiveState:
    """What the API process holds in memory about customers (None outside a server)."""

    event_log: EventLog | None = None
    shipper: EventShipper | None = None
    served: ServedLog | None = None
    forget_campaigns: Callable[[str], int] | None = None
    refresh_snapshot: Callable[[], None] | None = None


@dataclass
class _Stores:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, store: str, **counts: int) -> None:
        bucket = self.counts.setdefault(store, {})
        for name, value in counts.items():
            bucket[name] = bucket.get(name, 0) + int(value)

    def found(self) -> bool:
        # A log that did not answer is no sign of the customer: it may or may not hold them.
        return any(
            value > 0
            for store, counts in self.counts.items()
            if store != "serving_snapshot"
            for name, value in counts.items()
            if name != "logs_deferred"
        )


class Privacy:
    """Erasure and retention over the graph and the files under `KGREC_HOME`."""

    def __init__(
        self,
        driver: neo4j.Driver,
        *,
        database: str,
        app: AppSettings,
        request_timeout_s: float = 10.0,
    ) -> None:
        self.driver = driver
        self.database = database
        self.app = app
        self.home = app.home.resolve()
        self.events_folder = event_log_folder(app)
        self.request_timeout_s = request_timeout_s

    # -- erasure -----------------------------------------------------------------------------------
    def erase(
        self,
        customer_id: str,
        *,
        actor: str,
        delete_orders: bool = False,
        reason: str | None = None,
        live: LiveState | None = None,
    ) -> ErasureReceipt:
        """Erases `customer_id` from every store; safe to repeat.

        Raises:
            CustomerNotFound: no store held the customer (the receipt would be empty).
        """
        live = live or LiveState()
        erasure_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        subject = subject_digest(privacy_key(self.app), customer_id)
        stores = _Stores()
        if live.served is not None:
            stores.add("served_queue", lists=live.served.forget(customer_id))
        self._erase_event_logs(customer_id, erasure_id, live, stores)
        with self.driver.session(database=self.database) as session:
            graph = session.execute_write(
                _erase_graph, customer_id, subject, now.isoformat(), delete_orders
            )
        stores.add("graph", **graph)
        self._erase_artifacts(customer_id, stores)
        self._erase_campaign_exports(customer_id, stores)
        if live.forget_campaigns is not None:
            stores.add("campaign_exports", job_entries=live.forget_campaigns(customer_id))
        self._erase_rejects(customer_id, stores)
        if not stores.found():
            raise CustomerNotFound(
                f"customer {customer_id!r} is in none of kgrec's stores (graph, event logs, "
                "served lists, model artifacts, campaign exports, ingestion rejects): never "
                "known, or already erased; nothing to do"
                + "".join(f". Note: {note}" for note in stores.notes)
            )
        receipt = ErasureReceipt(
            erasure_id=erasure_id,
            erased_at=now,
            subject=subject,
            stores=stores.counts,
            notes=stores.notes,
        )
        self.driver.execute_query(
            load_cypher("recommender", "privacy_receipt"),
            event_id=erasure_id,
            now=now.isoformat(),
            actor=actor,
            subject=subject,
            receipt=receipt.model_dump_json(),
            reason=reason,
            database_=self.database,
        )
        self._record_in_ledger(receipt)
        if live.refresh_snapshot is not None:
            try:
                live.refresh_snapshot()
                receipt.stores["serving_snapshot"] = {"refreshed": 1}
            except Exception as exc:  # erased already: the periodic refresh catches up
                receipt.stores["serving_snapshot"] = {"refreshed": 0}
                receipt.notes.append(
                    f"the serving snapshot was not reloaded ({type(exc).__name__}: {exc}); "
                    "it reloads at its next turn (KGREC_SNAPSHOT_REFRESH_S)"
                )
            self.driver.execute_query(
                load_cypher("recommender", "privacy_receipt_update"),
                event_id=erasure_id,
                receipt=receipt.model_dump_json(),
                database_=self.database,
            )
        return receipt

    def _record_in_ledger(self, receipt: ErasureReceipt) -> None:
        line = json.dumps(
            {
                "erasure_id": receipt.erasure_id,
                "erased_at": receipt.erased_at.isoformat(),
                "subject": receipt.subject,
            }
        )
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / ERASURE_LEDGER_FILE).open("a") as ledger:
            ledger.write(line + "\n")
            ledger.flush()
            os.fsync(ledger.fileno())

    def ledger(self) -> dict[str, str]:
        """Subject digest -> erasure id of every erasure recorded in `KGREC_HOME/erasures.jsonl`."""
        path = self.home / ERASURE_LEDGER_FILE
        if not path.exists():
            return {}
        entries: dict[str, str] = {}
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                entries[entry["subject"]] = entry["erasure_id"]
            except (ValueError, KeyError, TypeError) as exc:
                raise PrivacyError(
                    f"{path}, line {number}: not an erasure record ({exc}); fix or remove the line"
                ) from exc
        return entries

    def _known_customer_ids(self) -> set[str]:
        """Every customer id any store holds: graph, event logs, model artifacts."""
        ids = {
            r["id"]
            for r in self.driver.execute_query(
                "MATCH (c:Customer) RETURN c.customer_id AS id", database_=self.database
            ).records
        }
        for folder in log_folders(self.events_folder):
            files = [*folder.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"), folder / DEAD_LETTER_FILE]
            for path in files:
                if not path.is_file():
                    continue
                for line in path.read_bytes().splitlines():
                    try:
                        value = json.loads(line)
                    except ValueError:
                        continue  # a torn last line: EventLog recovery deals with it
                    event = value.get("event", value) if isinstance(value, dict) else None
                    if isinstance(event, dict) and isinstance(event.get("customer_id"), str):
                        ids.add(event["customer_id"])
        root = self.home / "models"
        if root.is_dir():
            for maps in root.glob("*/id_maps.json"):
                ids.update(c for c in json.loads(maps.read_text()).get("customer", []) if c)
        return ids

    def reapply_erasures(self, *, actor: str) -> list[ErasureReceipt]:
        """Erases again every customer of the ledger that a store holds once more (after a
        backup restore, or a re-ingest of old source files); one receipt each."""
        ledger = self.ledger()
        if not ledger:
            return []
        key = privacy_key(self.app)
        receipts = []
        for customer_id in sorted(self._known_customer_ids()):
            erasure_id = ledger.get(subject_digest(key, customer_id))
            if erasure_id is None:
                continue
            try:
                receipts.append(
                    self.erase(
                        customer_id,
                        actor=actor,
                        reason=f"re-applied erasure {erasure_id}: the customer was back in a "
                        "store (a restored backup or a re-ingested file)",
                    )
                )
            except CustomerNotFound:
                continue
        return receipts

    def erasures(self, customer_id: str) -> list[dict[str, Any]]:
        """Receipts stored for `customer_id` (found by its keyed hash), newest first."""
        subject = subject_digest(privacy_key(self.app), customer_id)
        records = self.driver.execute_query(
            "MATCH (e:AuditEvent {subject_type: 'Customer', subject_id: $subject, "
            "action: 'erase'}) RETURN e.receipt AS receipt ORDER BY e.ts DESC",
            subject=subject,
            database_=self.database,
        ).records
        return [json.loads(r["receipt"]) for r in records]

    def _erase_event_logs(
        self, customer_id: str, erasure_id: str, live: LiveState, stores: _Stores
    ) -> None:
        own = live.event_log
        folders = log_folders(self.events_folder)
        if own is not None and own.folder not in folders:
            folders.append(own.folder)
        deferred: list[Path] = []
        for folder in folders:
            cursor = self._cursor_seq(read_log_id(folder))
            if own is not None and folder == own.folder:
                result = own.erase(lambda c: c == customer_id)
                if result.events and live.shipper is not None:
                    # A batch the shipper read before the rewrite may hold the customer's
                    # events: let it commit before the graph step deletes what it wrote.
                    live.shipper.wait_shipped(own.last_seq, self.request_timeout_s)
            else:
                try:
                    log = EventLog(folder)
                except EventLogBusy:
                    answer = self._ask_holder(folder, customer_id, erasure_id)
                    if answer is None:
                        deferred.append(folder)
                        continue
                    result = answer
                else:
                    with log:
                        result = log.erase(lambda c: c == customer_id)
            shipped = sum(1 for seq in result.events if seq <= cursor)
            stores.add(
                "event_logs",
                logs=int(bool(result.events or result.dead_letters)),
                events_shipped=shipped,
                events_unshipped=len(result.events) - shipped,
                dead_letters=result.dead_letters,
            )
        if deferred:
            stores.add("event_logs", logs_deferred=len(deferred))
            stores.notes.append(
                f"{len(deferred)} event log(s) are held by a running API process that did not "
                f"answer within {self.request_timeout_s:g} s ({', '.join(map(str, deferred))}); "
                "the request waits there and is carried out by its shipper's next turn. Run the "
                "erasure again once the server is healthy to confirm"
            )

    def _ask_holder(self, folder: Path, customer_id: str, erasure_id: str) -> LogErasure | None:
        """Asks the process holding `folder` to erase the customer (by salted hash); its
        answer, or None when none came in time (the request stays for it)."""
        requests = folder / ERASURE_FOLDER
        requests.mkdir(exist_ok=True)
        salt = secrets.token_hex(16)
        request = requests / f"{erasure_id}.request.json"
        body = {"erasure_id": erasure_id, "salt": salt, "digest": salted_digest(salt, customer_id)}
        _replace_file(request, json.dumps(body).encode())
        answer = requests / f"{erasure_id}.done.json"
        deadline = time.monotonic() + self.request_timeout_s
        while not answer.exists():
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        data = json.loads(answer.read_text())
        answer.unlink()
        return LogErasure(read_log_id(folder), folder, data["events"], data["dead_letters"])

    def _cursor_seq(self, log_id: str) -> int:
        records = self.driver.execute_query(
            load_cypher("recommender", "events_cursor_read"), name=log_id, database_=self.database
        ).records
        return int(records[0]["seq"]) if records else 0

    def _erase_artifacts(self, customer_id: str, stores: _Stores) -> None:
        root = self.home / "models"
        if not root.is_dir():
            return
        for folder in sorted(p for p in root.iterdir() if (p / "id_maps.json").is_file()):
            maps_path = folder / "id_maps.json"
            maps = json.loads(maps_path.read_text())
            rows = [i for i, c in enumerate(maps.get("customer", [])) if c == customer_id]
            if not rows:
                continue
            embeddings = folder / "embeddings.npz"
            if embeddings.is_file():
                with np.load(embeddings) as saved:
                    arrays = {name: saved[name].copy() for name in saved.files}
                arrays["customers"][rows] = 0.0
                temporary = folder / ".embeddings.erasing.npz"
                np.savez(temporary, **arrays)
                temporary.replace(embeddings)
            model_rows = 0
            if (folder / "model.pt").is_file():
                model_rows = _scrub_model_file(folder / "model.pt", rows)
            # The id goes last: a crash before leaves it for a repeated erasure to find.
            for i in rows:
                maps["customer"][i] = None
            _replace_file(maps_path, json.dumps(maps).encode())
            stores.add(
                "model_artifacts",
                versions=1,
                id_map_entries=len(rows),
                embedding_rows=len(rows) if embeddings.is_file() else 0,
                model_rows=model_rows,
            )

    def _erase_campaign_exports(self, customer_id: str, stores: _Stores) -> None:
        folder = self.home / "campaigns"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.csv")):
            text = path.read_text(encoding="utf-8")
            rows = list(csv.DictReader(io.StringIO(text)))
            kept = [r for r in rows if r.get("customer_id") != customer_id]
            if len(kept) == len(rows):
                continue
            out = io.StringIO()
            header = next(csv.reader(io.StringIO(text)))
            writer = csv.DictWriter(out, header, lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(kept)
            _replace_file(path, out.getvalue().encode("utf-8"))
            stores.add("campaign_exports", files=1, rows=len(rows) - len(kept))
        for path in sorted(folder.glob("*.json")):
            export = json.loads(path.read_text(encoding="utf-8"))
            rows = export.get("rows", [])
            kept = [r for r in rows if r.get("customer_id") != customer_id]
            if len(kept) == len(rows):
                continue
            export["rows"] = kept
            _replace_file(path, json.dumps(export).encode("utf-8"))
            stores.add("campaign_exports", files=1, rows=len(rows) - len(kept))

    def _erase_rejects(self, customer_id: str, stores: _Stores) -> None:
        """Rows of ingestion rejects files that name the customer (as a value of the refused
        row, or in a reason)."""
        records = self.driver.execute_query(
            "MATCH (r:IngestRun) WHERE r.rejects_file IS NOT NULL "
            "RETURN DISTINCT r.rejects_file AS path",
            database_=self.database,
        ).records
        for record in records:
            path = Path(record["path"])
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8")
            rows = list(csv.reader(io.StringIO(text)))
            if not rows:
                continue
            kept = [rows[0]] + [r for r in rows[1:] if not _reject_names(r, customer_id)]
            if len(kept) == len(rows):
                continue
            out = io.StringIO()
            csv.writer(out).writerows(kept)
            _replace_file(path, out.getvalue().encode("utf-8"))
            stores.add("ingest_rejects", files=1, rows=len(rows) - len(kept))

    # -- retention ---------------------------------------------------------------------------------
    def prune(
        self, older_than_days: int, *, actor: str, now: datetime | None = None
    ) -> PruneReport:
        """Deletes events older than the window: shipped event-log segments (never one holding
        an unshipped event, never the segment being written), dead letters, and the graph's
        event records (interaction times, served lists). Orders stay."""
        if older_than_days < 1:
            raise PrivacyError(f"older_than_days must be at least 1, got {older_than_days}")
        moment = now or datetime.now(UTC)
        cutoff = moment - timedelta(days=older_than_days)
        report = PruneReport(cutoff=cutoff)
        for folder in log_folders(self.events_folder):
            shipped = self._cursor_seq(read_log_id(folder))
            for segment in prunable_segments(folder, shipped, cutoff):
                segment.path.unlink()
                report.segments += 1
                report.log_events += segment.events
            report.dead_letters += self._prune_dead_letters(folder, cutoff, report)
        with self.driver.session(database=self.database) as session:
            for rel_type in EVENT_RELATIONSHIPS:
                query = load_cypher("recommender", "privacy_prune_interactions").replace(
                    "<<rel_type>>", rel_type
                )
                record = session.run(query, cutoff=cutoff.isoformat()).single()
                if record is not None and record["times"]:
                    report.graph[rel_type] = {
                        "event_times": int(record["times"]),
                        "relationships_deleted": int(record["deleted"]),
                    }
            record = session.run(
                load_cypher("recommender", "privacy_prune_served"), cutoff=cutoff.isoformat()
            ).single()
            if record is not None and record["deleted"]:
                report.graph["WAS_RECOMMENDED"] = {"relationships_deleted": int(record["deleted"])}
        self.driver.execute_query(
            load_cypher("recommender", "privacy_prune_audit"),
            event_id=uuid.uuid4().hex,
            now=moment.isoformat(),
            actor=actor,
            cutoff=cutoff.isoformat(),
            summary=json.dumps(report.summary(), sort_keys=True),
            database_=self.database,
        )
        return report

    def _prune_dead_letters(self, folder: Path, cutoff: datetime, report: PruneReport) -> int:
        try:
            log = EventLog(folder)
        except EventLogBusy:
            report.notes.append(
                f"dead letters of {folder} not pruned: a running API process holds that log "
                "(its segments were)"
            )
            return 0
        with log:
            path = folder / "dead-letters.jsonl"
            if not path.exists():
                return 0
            with log.dead_letters_lock:
                lines = path.read_bytes().splitlines(keepends=True)
                kept = [line for line in lines if not _dead_before(line, cutoff)]
                if len(kept) < len(lines):
                    _replace_file(path, b"".join(kept))
            return len(lines) - len(kept)


@dataclass
class PruneReport:
    cutoff: datetime
    segments: int = 0
    log_events: int = 0
    dead_letters: int = 0
    graph: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "event_logs": {
                "segments": self.segments,
                "events": self.log_events,
                "dead_letters": self.dead_letters,
            },
            "graph": self.graph,
        }


def _dead_before(line: bytes, cutoff: datetime) -> bool:
    try:
        at = datetime.fromisoformat(json.loads(line)["dead_lettered_at"])
    except (ValueError, KeyError, TypeError):
        return False  # unreadable: kept for a person to look at
    return at < cutoff


def _reject_names(row: list[str], customer_id: str) -> bool:
    """Whether a rejects-file row (file, line, reasons, row JSON) names the customer."""
    if len(row) < 4:
        return False
    reasons, original = row[2], row[3]
    if f"({customer_id})" in reasons:
        return True
    try:
        values = json.loads(original) if original else {}
    except ValueError:
        return customer_id in original
    return isinstance(values, dict) and customer_id in {str(v) for v in values.values()}


def _erase_graph(
    tx: neo4j.ManagedTransaction, customer_id: str, subject: str, now: str, delete_orders: bool
) -> dict[str, int]:
    """One transaction: counts, then the customer, their orders' link (or orders), the audit
    events naming them, and the shipping cursors' dead letters."""

    def run(name: str, **params: Any) -> neo4j.Record | None:
        return tx.run(load_cypher("recommender", name), params).single()

    counts: dict[str, int] = {}
    found = run("privacy_erase_count", customer_id=customer_id)
    if found is not None:
        types = Counter(found["types"])
        counts["customer_nodes"] = 1
        counts["relationships"] = sum(types.values())
        counts.update({f"rel_{t}": n for t, n in sorted(types.items())})
        counts["embeddings"] = int(found["embedding"])
        if delete_orders:
            orders = run("privacy_orders_delete", customer_id=customer_id)
            assert orders is not None
            counts["orders_deleted"] = int(orders["orders"])
            counts["order_lines_deleted"] = int(orders["lines"])
        else:
            orders = run("privacy_orders_anonymise", customer_id=customer_id, now=now)
            assert orders is not None
            counts["orders_anonymised"] = int(orders["orders"])
        run("privacy_erase_customer", customer_id=customer_id)
    redacted = run("privacy_redact_audit", customer_id=customer_id, subject=subject, now=now)
    counts["audit_events_redacted"] = int(redacted["redacted"]) if redacted else 0
    needle = '"customer_id":' + json.dumps(customer_id)
    letters = run("privacy_cursor_dead_letters", needle=needle)
    counts["cursor_dead_letters"] = int(letters["removed"]) if letters else 0
    return counts


def _scrub_model_file(path: Path, rows: list[int]) -> int:
    """Zeroes the customer's rows in a saved model, in a child process: PyTorch stays out of
    the API process (it would add about 600 MiB to each worker)."""
    result = subprocess.run(
        [sys.executable, "-m", "gnn.erasure", str(path), *map(str, rows)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PrivacyError(
            f"could not erase the customer's rows from {path}: {result.stderr.strip()[-2000:]}"
        )
    return int(result.stdout.strip() or 0)
