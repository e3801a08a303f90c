"""Storefront events (view, click, add_to_cart, purchase): durable before the answer, then
shipped to Neo4j in batches, exactly once.

Two halves, joined by a sequence number:

1. `EventLog` appends each accepted event as one JSON line to a segment file and fsyncs before
   `append` returns, so an acknowledged event survives a crash of the process or of Neo4j.
2. `EventShipper` (a background thread) reads the log after its position and writes batches to
   the graph. The batch's graph writes and its new position (an `EventCursor` node) commit in
   one Neo4j transaction, and the position is read back from Neo4j after any error or restart:
   a crash anywhere never loses an event and never writes one twice.

Layout of the log folder (default `KGREC_HOME/events`, `KGREC_EVENTS_DIR`):

    LOG_ID                          uuid of this log; the graph's cursor is named after it
    events-<first seq, 20 digits>.jsonl   segments, append-only, rotated at `segment_bytes`
    dead-letters.jsonl              events the graph could not take, one line each, with reason
    .lock                           held (flock) by the process that has the log open
    erasures/                       erasure requests to the holding process (privacy.py)

Each segment line is one event: `{"seq": 17, "received_at": "...Z", "event_id": ..., "kind":
..., "customer_id": ..., "product_id": ..., "ts": "...Z", "quantity": 1, "unit_price": null,
"order_id": null, "surface": null, "position": null}`. `seq` increases strictly (gaps are
allowed, so erasure can drop lines); docs/architecture.md ("Events") states the guarantees.
"""

from __future__ import annotations

import bisect
import fcntl
import hashlib
import itertools
import json
import logging
import os
import threading
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import neo4j
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from graph.cypher import load_cypher
from graph.errors import KgrecError
from graph.ingest.service import EVENT_RELATIONSHIPS
from graph.settings import AppSettings

logger = logging.getLogger(__name__)

EventKind = Literal["view", "click", "add_to_cart", "purchase"]
#: Interaction kind -> relationship type, as ingestion writes them (an allow-list: relationship
#: types never come from input). Purchases become orders instead (`Order`, `CONTAINS`).
INTERACTION_RELATIONSHIPS = {
    kind: EVENT_RELATIONSHIPS[kind] for kind in ("view", "click", "add_to_cart")
}
#: How far in the future an event time may lie (clocks of storefront servers drift a little).
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: Order id of a purchase that names none: one order per purchase event.
DERIVED_ORDER_PREFIX = "event-"
SEGMENT_PREFIX = "events-"
SEGMENT_SUFFIX = ".jsonl"
DEAD_LETTER_FILE = "dead-letters.jsonl"
LOG_ID_FILE = "LOG_ID"
ERASURE_FOLDER = "erasures"

Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class EventLogError(KgrecError):
    """The event log cannot be opened or written (locked by another process, disk, corruption)."""


class EventLogBusy(EventLogError):
    """Another process (or EventLog) holds the folder."""


def event_log_folder(app: AppSettings) -> Path:
    """Where the event log lives: `KGREC_EVENTS_DIR`, else `KGREC_HOME/events`."""
    return (app.events_dir or app.home / "events").resolve()


def _now() -> datetime:
    return datetime.now(UTC)


def _new_event_id() -> str:
    return str(uuid.uuid4())


class Event(BaseModel):
    """One storefront event, as the events API accepts it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "event_id": "4f6c2a9e-1d0b-4e53-9a57-0c1f8f0d2b11",
                    "kind": "click",
                    "customer_id": "C1042",
                    "product_id": "P-3310",
                    "ts": "2025-03-01T10:15:00Z",
                    "surface": "home",
                    "position": 2,
                },
                {
                    "kind": "purchase",
                    "customer_id": "C1042",
                    "product_id": "P-3310",
                    "ts": "2025-03-01T10:21:30Z",
                    "quantity": 2,
                    "unit_price": 19.9,
                    "order_id": "O-88121",
                },
            ]
        },
    )

    event_id: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ] = Field(
        default_factory=_new_event_id,
        description="Idempotency key chosen by the client: the same event sent again (a retry) "
        "is accepted once. A new uuid4 when missing.",
    )
    kind: EventKind = Field(description="view, click, add_to_cart or purchase.")
    customer_id: Identifier = Field(
        description="The shop's customer id (1-200 characters); an unknown customer is created."
    )
    product_id: Identifier = Field(
        description="The shop's product id (1-200 characters); must be in the graph, else the "
        "event is dead-lettered."
    )
    ts: datetime = Field(
        default_factory=_now,
        description="When it happened, ISO 8601 with a time zone (e.g. 2025-03-01T10:15:00Z); "
        "default: when the server received it. At most 5 minutes in the future.",
    )
    quantity: int = Field(
        1, gt=0, le=1_000_000, description="Units bought (purchase only; ignored for others)."
    )
    unit_price: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Price per unit paid (purchase only).",
    )
    order_id: Identifier | None = Field(
        None,
        description="Order the purchase belongs to; several purchase events may share one. "
        "Default: an order of its own, 'event-<event_id>'.",
    )
    surface: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
        | None
    ) = Field(
        None, description="Which recommendation list the product was shown in (e.g. home, cart)."
    )
    position: int | None = Field(
        None, ge=0, le=10_000, description="0-based slot of the product in that list."
    )

    @field_validator("event_id", "ts", mode="before")
    @classmethod
    def _default_when_null(cls, value: Any, info: ValidationInfo) -> Any:
        # An explicit null means "not given": the server picks the id or the time.
        if value is None:
            return _new_event_id() if info.field_name == "event_id" else _now()
        return value

    @field_validator("ts")
    @classmethod
    def _aware_and_not_future(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "ts has no time zone; send UTC as 2025-03-01T10:15:00Z or give an offset "
                "such as +01:00"
            )
        value = value.astimezone(UTC)
        if value > _now() + MAX_CLOCK_SKEW:
            raise ValueError(
                f"ts {value.isoformat()} is more than {MAX_CLOCK_SKEW} in the future; "
                "check the sender's clock"
            )
        return value

    def resolved_order_id(self) -> str:
        """The order this purchase is written to."""
        return self.order_id or f"{DERIVED_ORDER_PREFIX}{self.event_id}"


@dataclass(frozen=True)
class LoggedEvent:
    """An event as read back from the log: its sequence number, arrival time and fields."""

    seq: int
    received_at: datetime
    event_id: str
    kind: str
    customer_id: str
    product_id: str
    ts: datetime
    quantity: int
    unit_price: float | None
    order_id: str | None
    surface: str | None
    position: int | None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LoggedEvent:
        return cls(
            seq=int(record["seq"]),
            received_at=datetime.fromisoformat(record["received_at"]),
            event_id=record["event_id"],
            kind=record["kind"],
            customer_id=record["customer_id"],
            product_id=record["product_id"],
            ts=datetime.fromisoformat(record["ts"]),
            quantity=int(record.get("quantity", 1)),
            unit_price=record.get("unit_price"),
            order_id=record.get("order_id"),
            surface=record.get("surface"),
            position=record.get("position"),
        )

    def record(self) -> dict[str, Any]:
        """The JSON-ready form (as in the log line)."""
        return {
            "seq": self.seq,
            "received_at": _iso(self.received_at),
            "event_id": self.event_id,
            "kind": self.kind,
            "customer_id": self.customer_id,
            "product_id": self.product_id,
            "ts": _iso(self.ts),
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "order_id": self.order_id,
            "surface": self.surface,
            "position": self.position,
        }

    @property
    def order(self) -> str:
        """The order a purchase is written to (given, or one per event)."""
        return self.order_id or f"{DERIVED_ORDER_PREFIX}{self.event_id}"


def _line_seq(line: bytes) -> int | None:
    """The seq of a whole, well-formed log line; None for a torn or unreadable one."""
    if not line.endswith(b"\n"):
        return None
    try:
        return int(json.loads(line)["seq"])
    except (ValueError, KeyError, TypeError):
        return None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


# -- the local log -----------------------------------------------------------------------------


@dataclass
class _Segment:
    first_seq: int
    path: Path


class EventLog:
    """Append-only, fsynced JSON-lines log of accepted events, in rotating segment files.

    Thread-safe; one process at a time holds a folder (an flock on `.lock`). Opening recovers
    from a crash mid-write: a torn last line is cut off and numbering continues after the last
    whole line.
    """

    def __init__(
        self,
        folder: Path,
        segment_bytes: int = 16 * 2**20,
        dedupe_window: int = 100_000,
    ) -> None:
        if segment_bytes < 1:
            raise ValueError("segment_bytes must be positive")
        self.folder = folder.resolve()
        self.segment_bytes = segment_bytes
        self.dedupe_window = dedupe_window
        self.recovered_bytes = 0  # bytes of a torn last line cut off at open
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)
        self._recent: OrderedDict[str, None] = OrderedDict()  # event ids, oldest first
        self._read_hint: tuple[int, Path, int] | None = None  # (after seq, segment, byte offset)
        # Bumped when an erasure rewrites segments: a read that overlapped one starts over.
        self._generation = 0
        #: Held while the dead-letter file is appended to or rewritten (shipper vs erasure).
        self.dead_letters_lock = threading.Lock()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock_file: IO[bytes] | None = (self.folder / ".lock").open("ab")
        except OSError as exc:
            raise EventLogError(f"Cannot create the event log folder {self.folder}: {exc}") from exc
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_file.close()
            raise EventLogBusy(
                f"The event log {self.folder} is open in another process (or another EventLog "
                "of this one); one writer per folder. Set KGREC_EVENTS_DIR per process."
            ) from exc
        try:
            self.log_id = self._read_log_id()
            self._segments = self._list_segments()
            self._last_seq = self._recover()
            self._load_recent_ids()
            self._active: IO[bytes] | None = self._open_active()
        except BaseException:
            self.close()
            raise

    # -- opening -------------------------------------------------------------------------------

    def _read_log_id(self) -> str:
        path = self.folder / LOG_ID_FILE
        if path.exists():
            return path.read_text().strip()
        log_id = str(uuid.uuid4())
        temporary = path.with_suffix(".tmp")
        temporary.write_text(log_id + "\n")
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        temporary.replace(path)
        self._sync_folder()
        return log_id

    def _list_segments(self) -> list[_Segment]:
        segments = []
        for path in self.folder.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"):
            number = path.name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
            if number.isdigit():
                segments.append(_Segment(int(number), path))
        return sorted(segments, key=lambda s: s.first_seq)

    def _recover(self) -> int:
        """Cuts a torn write off the last segment; returns the last whole line's seq.

        Only the end of the last segment can be torn (appends are fsynced one call at a time):
        a partial last line, or lines a crash left unreadable (zero-filled blocks). Damage
        followed by good lines is not a torn write, and is refused rather than cut.
        """
        if not self._segments:
            return 0
        last = self._segments[-1]
        data = last.path.read_bytes()
        last_seq = last.first_seq - 1
        good = 0  # end of the last good line
        damaged_at: int | None = None
        offset = 0
        for line in data.splitlines(keepends=True):
            seq = _line_seq(line)
            if seq is None:
                damaged_at = offset if damaged_at is None else damaged_at
            elif damaged_at is not None:
                raise EventLogError(
                    f"Event log segment {last.path} is damaged at byte {damaged_at} and holds good "
                    "lines after it; this is not a torn write. Move the file aside after "
                    "checking it, then restart"
                )
            elif seq <= last_seq:
                raise EventLogError(
                    f"Event log segment {last.path}: seq {seq} at byte {offset} does not increase "
                    f"(previous {last_seq}); the file was edited or damaged"
                )
            else:
                last_seq, good = seq, offset + len(line)
            offset += len(line)
        if good < len(data):
            self.recovered_bytes = len(data) - good
            logger.warning(
                "Event log %s: cut %d byte(s) of a torn write off its end (a crash mid-write; "
                "those events were never acknowledged)",
                last.path,
                self.recovered_bytes,
            )
            with last.path.open("r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())
        return last_seq

    def _load_recent_ids(self) -> None:
        """Event ids of the latest `dedupe_window` events, so a client's retry after a restart
        is still recognised."""
        wanted = self.dedupe_window
        ids: list[str] = []
        for segment in reversed(self._segments):
            if len(ids) >= wanted:
                break
            with segment.path.open("rb") as handle:
                chunk = [json.loads(line)["event_id"] for line in handle]
            ids = chunk + ids
        for event_id in ids[-wanted:] if wanted else []:
            self._recent[event_id] = None

    def _open_active(self) -> IO[bytes]:
        if not self._segments:
            self._segments.append(self._new_segment_path(self._last_seq + 1))
        return self._segments[-1].path.open("ab")

    def _new_segment_path(self, first_seq: int) -> _Segment:
        path = self.folder / f"{SEGMENT_PREFIX}{first_seq:020d}{SEGMENT_SUFFIX}"
        path.touch()
        self._sync_folder()
        return _Segment(first_seq, path)

    def _sync_folder(self) -> None:
        # A new file's directory entry must be durable too, or a crash could lose the file.
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- writing -------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Sequence number of the last durable event (0 for an empty log)."""
        with self._lock:
            return self._last_seq

    def append(self, events: Sequence[Event]) -> list[str]:
        """Writes the events and fsyncs before returning; returns their event ids, in order.

        An event whose `event_id` is among the latest `dedupe_window` accepted is a retry: it is
        not written again (its id is returned all the same).

        Raises:
            EventLogError: the write or fsync failed; nothing of this call is in the log.
        """
        received = _iso(_now())
        with self._lock:
            if self._active is None:
                raise EventLogError(f"The event log {self.folder} is closed")
            lines: list[bytes] = []
            fresh: dict[str, None] = {}
            seq = self._last_seq
            for event in events:
                if event.event_id in self._recent or event.event_id in fresh:
                    continue
                seq += 1
                fresh[event.event_id] = None
                record = {"seq": seq, "received_at": received, **event.model_dump(mode="json")}
                record["ts"] = _iso(event.ts)
                lines.append(json.dumps(record, separators=(",", ":")).encode() + b"\n")
            if lines:
                self._write(b"".join(lines), seq)
                for event_id in fresh:
                    self._recent[event_id] = None
                while len(self._recent) > self.dedupe_window:
                    self._recent.popitem(last=False)
                self._appended.notify_all()
        return [event.event_id for event in events]

    def _write(self, data: bytes, last_seq: int) -> None:
        assert self._active is not None
        if self._active.tell() >= self.segment_bytes:
            self._rotate()
        start = self._active.tell()
        try:
            self._active.write(data)
            self._active.flush()
            os.fsync(self._active.fileno())
        except OSError as exc:
            # Leave no partial line behind: the caller is told nothing was accepted.
            try:
                self._active.truncate(start)
                self._active.seek(start)
            except OSError:
                logger.exception("Event log %s: could not cut a failed write off", self.folder)
            raise EventLogError(
                f"Could not write to the event log in {self.folder}: {exc}"
            ) from exc
        self._last_seq = last_seq

    def _rotate(self) -> None:
        assert self._active is not None
        self._active.close()
        self._active = None
        self._segments.append(self._new_segment_path(self._last_seq + 1))
        self._active = self._segments[-1].path.open("ab")

    # -- reading -------------------------------------------------------------------------------

    def wait_for(self, after_seq: int, timeout: float) -> bool:
        """Blocks until an event after `after_seq` is durable, or `timeout` seconds pass."""
        with self._appended:
            return self._appended.wait_for(lambda: self._last_seq > after_seq, timeout)

    def read(self, after_seq: int, limit: int) -> list[LoggedEvent]:
        """Up to `limit` durable events with seq > `after_seq`, in order."""
        while True:
            with self._lock:
                generation = self._generation
                durable = self._last_seq
                segments = list(self._segments)
                hint = self._read_hint
            if limit <= 0 or after_seq >= durable or not segments:
                return []
            out, end = self._read_from(after_seq, limit, durable, segments, hint)
            with self._lock:
                if self._generation != generation:
                    continue  # an erasure rewrote the files under this read: read again
                if end is not None:
                    self._read_hint = end
            return out

    def _read_from(
        self,
        after_seq: int,
        limit: int,
        durable: int,
        segments: list[_Segment],
        hint: tuple[int, Path, int] | None,
    ) -> tuple[list[LoggedEvent], tuple[int, Path, int] | None]:
        if hint is not None and hint[0] == after_seq and any(s.path == hint[1] for s in segments):
            index = next(i for i, s in enumerate(segments) if s.path == hint[1])
            offset = hint[2]
        else:
            firsts = [s.first_seq for s in segments]
            index = max(bisect.bisect_right(firsts, after_seq + 1) - 1, 0)
            offset = 0
        out: list[LoggedEvent] = []
        end: tuple[int, Path, int] | None = None
        done = False
        while index < len(segments) and not done:
            path = segments[index].path
            if not path.exists() and index < len(segments) - 1:
                # Deleted by retention (`kgrec events prune`), which takes only segments
                # shipped in full: nothing after `after_seq` was in it.
                index += 1
                offset = 0
                continue
            with path.open("rb") as handle:
                handle.seek(offset)
                while len(out) < limit:
                    line = handle.readline()
                    if not line.endswith(b"\n"):
                        break  # end of this segment, or a line still being written
                    try:
                        record = json.loads(line)
                    except ValueError as exc:
                        raise EventLogError(
                            f"Event log segment {path} holds a line that is not JSON at byte "
                            f"{handle.tell() - len(line)}: the file was damaged"
                        ) from exc
                    seq = int(record["seq"])
                    if seq > durable:
                        done = True  # appended but not yet fsynced: not ours to ship yet
                        break
                    if seq > after_seq:
                        out.append(LoggedEvent.from_record(record))
                        end = (seq, path, handle.tell())
            done = done or len(out) >= limit or (bool(out) and out[-1].seq >= durable)
            index += 1
            offset = 0
        return out, end

    def segments(self) -> list[Path]:
        """Segment files, oldest first."""
        with self._lock:
            return [s.path for s in self._segments]

    # -- erasure (recommender/privacy.py) ------------------------------------------------------

    def erase(self, matches: Callable[[str], bool]) -> LogErasure:
        """Rewrites the segments and the dead-letter file without the events of the customers
        `matches` picks (a customer's erasure); returns the seqs removed.

        Runs under the log's lock, so appends wait and no line is half-written. Each file is
        replaced whole (temporary file, fsync, rename), so a crash leaves the old or the new
        file, never a mix. Seqs keep increasing with gaps; when lines leave the active segment
        a fresh segment starts at the next seq, so the log's high-water mark (which the
        graph's cursor is checked against at start-up) survives a restart.
        """
        removed: list[int] = []
        dead_letters = 0
        with self._lock:
            last_touched = False
            # Segments deleted by retention meanwhile (never the last one) are gone for good.
            *older, last = self._segments
            self._segments = [s for s in older if s.path.exists()] + [last]
            for index, segment in enumerate(self._segments):
                data = segment.path.read_bytes()
                kept, dropped = _without_customers(data, matches, lambda r: r)
                if dropped:
                    _replace_file(segment.path, b"".join(kept))
                    removed.extend(dropped)
                    last_touched = last_touched or index == len(self._segments) - 1
            if removed:
                self._generation += 1
                self._read_hint = None
                if self._active is not None:
                    self._active.close()
                    self._active = None
                    if last_touched:
                        self._segments.append(self._new_segment_path(self._last_seq + 1))
                    self._active = self._segments[-1].path.open("ab")
        path = self.folder / DEAD_LETTER_FILE
        with self.dead_letters_lock:
            if path.exists():
                kept, dropped = _without_customers(
                    path.read_bytes(), matches, lambda r: r.get("event") or {}
                )
                if dropped:
                    _replace_file(path, b"".join(kept))
                    dead_letters = len(dropped)
        return LogErasure(self.log_id, self.folder, sorted(removed), dead_letters)

    def apply_erasure_requests(self) -> int:
        """Carries out erasures another process asked this log's holder for (files under
        `erasures/`, naming the customer only by a salted hash), writing a `.done.json` answer
        for each; returns how many were done. The shipper calls it at every turn."""
        folder = self.folder / ERASURE_FOLDER
        if not folder.is_dir():
            return 0
        done = 0
        for request_path in sorted(folder.glob("*.request.json")):
            try:
                request = json.loads(request_path.read_text())
                salt, digest = str(request["salt"]), str(request["digest"])
            except (ValueError, KeyError, TypeError) as exc:
                # Set aside, or the shipper would stop on it at every turn.
                request_path.rename(request_path.with_suffix(".invalid"))
                logger.error("Erasure request %s is unreadable, set aside: %s", request_path, exc)
                continue
            result = self.erase(_digest_matcher(salt, digest))
            answer = request_path.with_name(request_path.name.replace(".request.", ".done."))
            _replace_file(
                answer,
                json.dumps({"events": result.events, "dead_letters": result.dead_letters}).encode(),
            )
            request_path.unlink()
            done += 1
        return done

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the active segment and releases the folder."""
        with self._lock:
            active = getattr(self, "_active", None)
            if active is not None:
                active.close()
            self._active = None
            if self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# -- planning a batch (pure) -------------------------------------------------------------------


@dataclass
class BatchPlan:
    """The graph writes of one batch, grouped for `UNWIND`, and the events left out."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    interactions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    orders: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    buyers: list[str] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


def plan_batch(
    events: Iterable[LoggedEvent], known_products: set[str], order_owners: dict[str, str]
) -> BatchPlan:
    """Groups a batch into its writes; events naming an unknown product, or an order another
    customer placed, become dead letters with their reason."""
    plan = BatchPlan()
    owners = dict(order_owners)
    first_seen: dict[str, int] = {}
    pairs: dict[str, dict[tuple[str, str], list[int]]] = defaultdict(dict)
    orders: dict[str, dict[str, Any]] = {}
    lines: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        if event.product_id not in known_products:
            plan.dead_letters.append(
                _dead_letter(event, f"product {event.product_id!r} is not in the graph")
            )
            continue
        ts = _millis(event.ts)
        if event.kind == "purchase":
            order_id = event.order
            owner = owners.setdefault(order_id, event.customer_id)
            if owner != event.customer_id:
                plan.dead_letters.append(
                    _dead_letter(
                        event,
                        f"order {order_id!r} was placed by customer {owner!r}, "
                        f"not {event.customer_id!r}",
                    )
                )
                continue
            order = orders.setdefault(
                order_id, {"order_id": order_id, "customer_id": event.customer_id, "ts": ts}
            )
            order["ts"] = min(order["ts"], ts)
            line = lines.setdefault(
                (order_id, event.product_id),
                {
                    "order_id": order_id,
                    "product_id": event.product_id,
                    "quantity": 0,
                    "gross": 0.0,
                    "priced_quantity": 0,
                    "lines": 0,
                },
            )
            line["quantity"] += event.quantity
            line["lines"] += 1
            if event.unit_price is not None:
                line["gross"] += event.quantity * event.unit_price
                line["priced_quantity"] += event.quantity
        else:
            rel_type = INTERACTION_RELATIONSHIPS[event.kind]
            pairs[rel_type].setdefault((event.customer_id, event.product_id), []).append(ts)
        first_seen[event.customer_id] = min(first_seen.get(event.customer_id, ts), ts)
    plan.customers = [{"customer_id": c, "ts": ts} for c, ts in sorted(first_seen.items())]
    plan.interactions = {
        rel_type: [
            {"customer_id": c, "product_id": p, "ts": sorted(times)}
            for (c, p), times in grouped.items()
        ]
        for rel_type, grouped in pairs.items()
    }
    plan.orders = list(orders.values())
    plan.lines = list(lines.values())
    plan.buyers = sorted({order["customer_id"] for order in orders.values()})
    return plan


def _dead_letter(event: LoggedEvent, reason: str) -> dict[str, Any]:
    return {"seq": event.seq, "reason": reason, "event": event.record()}


# -- shipping to Neo4j -------------------------------------------------------------------------


@dataclass(frozen=True)
class ShipperStats:
    """For /metrics and /readyz: how far the graph is behind the log, and why."""

    accepted_seq: int  # last durable seq in the log
    shipped_seq: int | None  # committed in the graph; None until the cursor has been read
    pending: int  # accepted but not yet in the graph (counted from 0 while shipped_seq is None)
    dead_lettered: int
    last_error: str | None
    last_error_at: datetime | None
    last_success_at: datetime | None
    running: bool


class _CursorMoved(Exception):
    """Another shipper (or an earlier, uncertain commit) moved the graph's position."""


class EventShipper:
    """Background thread: log -> Neo4j in batches, the position committed with each batch."""

    def __init__(
        self,
        log: EventLog,
        driver: neo4j.Driver,
        database: str,
        batch_size: int = 500,
        interval_s: float = 0.2,
        max_backoff_s: float = 5.0,
        cursor_name: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.log = log
        self.driver = driver
        self.database = database
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.cursor_name = cursor_name or log.log_id
        self.dead_letter_path = log.folder / DEAD_LETTER_FILE
        self._state = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._position: int | None = None
        self._dead_lettered = 0
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._last_success_at: datetime | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the shipping thread (it connects, and retries, on its own)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="kgrec-event-shipper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Asks the thread to stop after its current batch; returns whether it has stopped.
        Unshipped events stay in the log for the next start."""
        self._stopping.set()
        with self._state:
            self._state.notify_all()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def wait_shipped(self, seq: int, timeout: float) -> bool:
        """Blocks until every event up to `seq` is committed in the graph (or dead-lettered)."""
        with self._state:
            return self._state.wait_for(
                lambda: self._position is not None and self._position >= seq, timeout
            )

    def stats(self) -> ShipperStats:
        accepted = self.log.last_seq
        with self._state:
            shipped = self._position
            return ShipperStats(
                accepted_seq=accepted,
                shipped_seq=shipped,
                pending=max(accepted - (shipped or 0), 0),
                dead_lettered=self._dead_lettered,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
                last_success_at=self._last_success_at,
                running=self._thread is not None and self._thread.is_alive(),
            )

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = min(0.5, self.max_backoff_s)
        while not self._stopping.is_set():
            try:
                # Before reading a batch: once a request is answered, no batch of this thread
                # still holds the erased customer's events (the erasure then clears the graph).
                self.log.apply_erasure_requests()
                if self._position is None:
                    self._connect()
                position = self._position
                assert position is not None
                batch = self.log.read(position, self.batch_size)
                if not batch:
                    self.log.wait_for(position, self.interval_s)
                    continue
                self._ship(position, batch)
                backoff = min(0.5, self.max_backoff_s)
            except _CursorMoved:
                with self._state:
                    self._position = None  # re-read from the graph
            except Exception as exc:  # Neo4j down, timeouts, disk: retry, nothing is lost
                self._failed(exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def _failed(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        with self._state:
            first = self._last_error is None
            self._last_error, self._last_error_at = message, _now()
            # The commit may or may not have happened: only the graph knows the position now.
            self._position = None
        log = logger.warning if first else logger.debug
        log("Event shipping failed, retrying (events stay in the log): %s", message)

    def _connect(self) -> None:
        """Makes sure the cursor constraint exists and reads the committed position; writes the
        dead letters of the last committed batch if a crash kept them from the local file."""
        # Auto-commit queries, not execute_query: its own retries would hold the thread for
        # half a minute while Neo4j is down; this loop's backoff is shorter and stoppable.
        with self.driver.session(database=self.database) as session:
            session.run(load_cypher("recommender", "events_schema")).consume()
            record = session.run(
                load_cypher("recommender", "events_cursor_read"), name=self.cursor_name
            ).single()
        seq, dead_lettered = 0, 0
        last_dead: list[str] = []
        if record is not None:
            seq = record["seq"]
            dead_lettered = record["dead_lettered"]
            last_dead = record["last_dead_letters"] or []
        if last_dead:
            self._write_dead_letters([json.loads(text) for text in last_dead])
        if seq > self.log.last_seq:
            raise EventLogError(
                f"The graph has shipped event {seq} of log {self.cursor_name}, but the log in "
                f"{self.log.folder} ends at {self.log.last_seq}: the log was truncated or "
                "restored from an old copy; events after it would be skipped"
            )
        with self._state:
            self._position = seq
            self._dead_lettered = dead_lettered
            self._state.notify_all()

    def _ship(self, after: int, batch: list[LoggedEvent]) -> None:
        """One transaction: check the position, write the batch, move the position."""
        new_seq = batch[-1].seq
        with self.driver.session(database=self.database) as session:
            tx = session.begin_transaction()
            try:
                cursor = tx.run(
                    load_cypher("recommender", "events_cursor_lock"), name=self.cursor_name
                ).single(strict=True)
                if cursor["seq"] != after:
                    raise _CursorMoved()
                products = sorted({event.product_id for event in batch})
                known = {
                    record["id"]
                    for record in tx.run(
                        load_cypher("recommender", "events_known_products"), ids=products
                    )
                }
                order_ids = sorted({e.order for e in batch if e.kind == "purchase"})
                owners = {
                    record["order_id"]: record["customer_id"]
                    for record in tx.run(
                        load_cypher("recommender", "events_order_owners"), ids=order_ids
                    )
                }
                plan = plan_batch(batch, known, owners)
                self._write_plan(tx, plan)
                tx.run(
                    load_cypher("recommender", "events_cursor_advance"),
                    name=self.cursor_name,
                    seq=new_seq,
                    dead_letters=[json.dumps(d, separators=(",", ":")) for d in plan.dead_letters],
                ).consume()
                tx.commit()
            finally:
                if not tx.closed():
                    tx.close()
        self._after_commit(new_seq, plan)

    @staticmethod
    def _write_plan(tx: neo4j.Transaction, plan: BatchPlan) -> None:
        def run(name: str, query: str | None = None, **params: Any) -> None:
            if any(isinstance(v, list) and not v for v in params.values()):
                return
            tx.run(query or load_cypher("recommender", name), params).consume()

        run("events_customers", rows=plan.customers)
        for rel_type, rows in sorted(plan.interactions.items()):
            if rel_type not in INTERACTION_RELATIONSHIPS.values():
                raise ValueError(f"relationship type {rel_type!r} is not an event relationship")
            query = load_cypher("recommender", "events_interactions").replace(
                "<<rel_type>>", rel_type
            )
            run("events_interactions", query, rows=rows)
        run("events_orders", rows=plan.orders)
        run("events_order_lines", rows=plan.lines)
        run("events_purchased", customer_ids=plan.buyers)

    def _after_commit(self, new_seq: int, plan: BatchPlan) -> None:
        """Local bookkeeping once the graph holds the batch (a crash before it loses nothing:
        the position is re-read from the graph, the dead letters from the cursor)."""
        if plan.dead_letters:
            self._write_dead_letters(plan.dead_letters)
        with self._state:
            self._position = new_seq
            self._dead_lettered += len(plan.dead_letters)
            self._last_success_at = _now()
            self._last_error = None
            self._state.notify_all()

    def _write_dead_letters(self, letters: list[dict[str, Any]]) -> None:
        """Appends dead letters not yet in the file (by seq), fsynced."""
        with self.log.dead_letters_lock:  # an erasure may be rewriting the file
            self._append_dead_letters(letters)

    def _append_dead_letters(self, letters: list[dict[str, Any]]) -> None:
        written: set[int] = set()
        if self.dead_letter_path.exists():
            data = self.dead_letter_path.read_bytes()
            whole = data[: data.rfind(b"\n") + 1]
            if len(whole) < len(data):  # a crash mid-write: cut the torn line
                with self.dead_letter_path.open("r+b") as handle:
                    handle.truncate(len(whole))
            written = {int(json.loads(line)["seq"]) for line in whole.splitlines()}
        fresh = [letter for letter in letters if int(letter["seq"]) not in written]
        if not fresh:
            return
        at = _iso(_now())
        data = b"".join(
            json.dumps({**letter, "dead_lettered_at": at}, separators=(",", ":")).encode() + b"\n"
            for letter in fresh
        )
        with self.dead_letter_path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        for letter in fresh:
            logger.warning("Event %s dead-lettered: %s", letter["seq"], letter["reason"])


def read_dead_letters(path: Path) -> list[dict[str, Any]]:
    """The dead-letter file's entries (seq, reason, event, dead_lettered_at), oldest first."""
    if not path.exists():
        return []
    with path.open("rb") as handle:
        return [json.loads(line) for line in handle if line.endswith(b"\n")]


# -- erasure and retention (recommender/privacy.py drives them) -----------------------------------


@dataclass(frozen=True)
class LogErasure:
    """What an erasure removed from one log: the seqs of the events and the dead letters."""

    log_id: str
    folder: Path
    events: list[int]
    dead_letters: int


def _digest_matcher(salt: str, digest: str) -> Callable[[str], bool]:
    return lambda customer: salted_digest(salt, customer) == digest


def salted_digest(salt: str, customer_id: str) -> str:
    """sha256 of salt + id: how erasure requests name a customer without writing the id."""
    return hashlib.sha256((salt + customer_id).encode()).hexdigest()


def _without_customers(
    data: bytes,
    matches: Callable[[str], bool],
    event_of: Callable[[dict[str, Any]], dict[str, Any]],
) -> tuple[list[bytes], list[int]]:
    """The lines of a JSON-lines file whose event is not a picked customer's, and the seqs of
    those that are. Unreadable lines are kept: an erasure never drops what it cannot read."""
    kept: list[bytes] = []
    dropped: list[int] = []
    for line in data.splitlines(keepends=True):
        try:
            record = json.loads(line)
            customer = event_of(record).get("customer_id")
        except (ValueError, AttributeError):
            kept.append(line)
            continue
        if isinstance(customer, str) and matches(customer):
            dropped.append(int(record.get("seq", 0)))
        else:
            kept.append(line)
    return kept, dropped


def _replace_file(path: Path, data: bytes) -> None:
    """Writes `data` to `path` atomically and durably (temporary file, fsync, rename)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def log_folders(base: Path) -> list[Path]:
    """Every event log under `base`: the first process's and each `worker-N`'s."""
    folders = [base] if (base / LOG_ID_FILE).exists() else []
    workers = [p for p in base.glob("worker-*") if (p / LOG_ID_FILE).exists()]
    return folders + sorted(workers, key=lambda p: (len(p.name), p.name))


def read_log_id(folder: Path) -> str:
    return (folder / LOG_ID_FILE).read_text().strip()


@dataclass(frozen=True)
class PrunedSegment:
    path: Path
    events: int
    newest: datetime | None


def prunable_segments(folder: Path, shipped_seq: int, cutoff: datetime) -> list[PrunedSegment]:
    """Segments of a log that retention may delete: not the active (last) one, every event in
    them shipped (`shipped_seq`, the graph's cursor) and received before `cutoff`.

    Safe while a process holds the log: its reader never goes back before the cursor, and the
    last segment, the only one written to, is never picked."""
    segments = []
    for path in folder.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"):
        number = path.name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
        if number.isdigit():
            segments.append(_Segment(int(number), path))
    segments.sort(key=lambda s: s.first_seq)
    out = []
    for segment, following in itertools.pairwise(segments):
        if following.first_seq - 1 > shipped_seq:
            break  # this segment (and all after it) still holds unshipped events
        lines = [line for line in segment.path.read_bytes().splitlines() if line.strip()]
        newest = datetime.fromisoformat(json.loads(lines[-1])["received_at"]) if lines else None
        if newest is None or newest < cutoff:
            out.append(PrunedSegment(segment.path, len(lines), newest))
        else:
            break  # segments are in arrival order: later ones are newer still
    return out
