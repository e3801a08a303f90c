"""Storefront events: the durable local log (sequence, torn writes, rotation, concurrency,
validation) and the shipper to the real Neo4j (exact counts, Neo4j stopped mid-stream, a second
shipper after a crash, dead letters, the same graph as ingestion)."""

from __future__ import annotations

import csv
import json
import shutil
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import neo4j
import pytest
from pydantic import ValidationError

from graph.local import LocalNeo4j
from graph.schema import apply_schema
from graph.settings import AppSettings, Settings
from recommender.events import (
    DEAD_LETTER_FILE,
    Event,
    EventLog,
    EventLogError,
    EventShipper,
    LoggedEvent,
    event_log_folder,
    plan_batch,
    read_dead_letters,
)
from tests.graph.test_ingest import TINY_SHOP, ingest

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def event(kind: str = "view", customer: str = "C1", product: str = "P1", **extra: Any) -> Event:
    return Event.model_validate(
        {"kind": kind, "customer_id": customer, "product_id": product, **extra}
    )


# -- the event model ---------------------------------------------------------------------------


def test_event_defaults_and_normalisation() -> None:
    e = event(ts="2024-03-01T11:00:00+01:00")
    assert e.ts == T0 and e.ts.tzinfo == UTC
    assert len(e.event_id) == 36  # a uuid4 chosen by the server
    assert e.quantity == 1 and e.unit_price is None
    # Explicit nulls mean "not given" too.
    e = Event.model_validate(
        {"kind": "click", "customer_id": " C1 ", "product_id": "P1", "event_id": None, "ts": None}
    )
    assert (
        e.customer_id == "C1" and e.event_id and (datetime.now(UTC) - e.ts) < timedelta(minutes=1)
    )
    assert e.resolved_order_id() == f"event-{e.event_id}"
    assert event("purchase", order_id="O9").resolved_order_id() == "O9"


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        ({"ts": "2024-03-01T10:00:00"}, "ts", "time zone"),
        ({"ts": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, "ts", "in the future"),
        ({"kind": "rating"}, "kind", "view"),
        ({"customer_id": "  "}, "customer_id", "at least 1 character"),
        ({"product_id": "x" * 201}, "product_id", "at most 200 characters"),
        ({"quantity": 0}, "quantity", "greater than 0"),
        ({"unit_price": -1}, "unit_price", "greater than or equal to 0"),
        ({"unit_price": float("nan")}, "unit_price", "finite"),
        ({"position": -1}, "position", "greater than or equal to 0"),
        ({"product": "P1"}, "product", "Extra inputs are not permitted"),
    ],
)
def test_bad_events_are_refused_naming_the_field(
    extra: dict[str, Any], field: str, reason: str
) -> None:
    body = {"kind": "view", "customer_id": "C1", "product_id": "P1", **extra}
    with pytest.raises(ValidationError) as caught:
        Event.model_validate(body)
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert reason in errors[0]["msg"]


def test_event_schema_has_examples_and_descriptions() -> None:
    schema = Event.model_json_schema()
    assert schema["examples"]
    assert all(Event.model_validate(example) for example in schema["examples"])
    assert all(prop.get("description") for prop in schema["properties"].values())


def test_log_folder_follows_settings(tmp_path: Path) -> None:
    assert event_log_folder(AppSettings(home=tmp_path)) == tmp_path / "events"
    assert event_log_folder(AppSettings(home=tmp_path, events_dir=tmp_path / "x")) == tmp_path / "x"


# -- the log -----------------------------------------------------------------------------------


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    with EventLog(tmp_path / "events") as opened:
        yield opened


def test_append_then_read_in_sequence(log: EventLog) -> None:
    ids = log.append([event(ts=T0), event("click", ts=T0 + timedelta(seconds=1)), event("view")])
    assert log.last_seq == 3
    read = log.read(0, 10)
    assert [e.seq for e in read] == [1, 2, 3]
    assert [e.event_id for e in read] == ids
    assert read[0].ts == T0 and read[1].kind == "click"
    assert [e.seq for e in log.read(1, 1)] == [2]
    assert log.read(3, 10) == []
    # Lines are plain JSON, one event each.
    lines = log.segments()[0].read_text().splitlines()
    assert json.loads(lines[0])["seq"] == 1 and json.loads(lines[0])["ts"] == "2024-03-01T10:00:00Z"


def test_a_retried_event_id_is_accepted_once_even_after_reopening(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    with EventLog(folder) as log:
        first = event(event_id="e-1")
        assert log.append([first, event(event_id="e-1"), event(event_id="e-2")]) == [
            "e-1",
            "e-1",
            "e-2",
        ]
        assert log.last_seq == 2
    with EventLog(folder) as log:
        assert log.append([event(event_id="e-1")]) == ["e-1"]
        assert log.last_seq == 2
        log.append([event(event_id="e-3")])
        assert [e.event_id for e in log.read(0, 10)] == ["e-1", "e-2", "e-3"]


def test_reopening_cuts_a_torn_last_line_and_continues_numbering(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    with EventLog(folder) as log:
        log.append([event(event_id=f"e{i}") for i in range(3)])
        segment = log.segments()[-1]
    whole = segment.read_bytes()
    # A crash mid-write: part of a line, no newline; then blocks the crash left zero-filled.
    segment.write_bytes(whole + b'{"seq":4,"received_at":"2024-03-01T1')
    with EventLog(folder) as log:
        assert log.recovered_bytes > 0
        assert segment.read_bytes() == whole
        assert log.last_seq == 3
        log.append([event(event_id="e3")])
        assert [e.seq for e in log.read(0, 10)] == [1, 2, 3, 4]
    segment.write_bytes(segment.read_bytes() + b"\0" * 40 + b"}\n" + b"\0" * 10)
    with EventLog(folder) as log:
        assert log.last_seq == 4
        assert [e.event_id for e in log.read(0, 10)] == ["e0", "e1", "e2", "e3"]


def test_damage_before_good_lines_is_refused_not_cut(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    with EventLog(folder) as log:
        log.append([event(event_id=f"e{i}") for i in range(3)])
        segment = log.segments()[-1]
    lines = segment.read_bytes().splitlines(keepends=True)
    segment.write_bytes(lines[0] + b"garbage\n" + lines[2])
    with pytest.raises(EventLogError, match="damaged at byte"):
        EventLog(folder)
    assert segment.read_bytes() == lines[0] + b"garbage\n" + lines[2]  # untouched


def test_one_open_log_per_folder(log: EventLog) -> None:
    with pytest.raises(EventLogError, match="open in another process"):
        EventLog(log.folder)


def test_segments_rotate_and_reads_cross_them(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    with EventLog(folder, segment_bytes=600) as log:
        for i in range(40):
            log.append([event(event_id=f"e{i}", ts=T0 + timedelta(seconds=i))])
        segments = log.segments()
        assert len(segments) > 5
        assert all(s.stat().st_size < 600 + 400 for s in segments)
        assert [e.seq for e in log.read(0, 1000)] == list(range(1, 41))
        assert [e.seq for e in log.read(23, 7)] == list(range(24, 31))
        # Sequential reads (the shipper's pattern) continue where the last one ended.
        got, after = [], 0
        while batch := log.read(after, 3):
            got += [e.event_id for e in batch]
            after = batch[-1].seq
        assert got == [f"e{i}" for i in range(40)]
    # Segment names give their first seq; numbering continues after a reopen.
    first_seqs = [int(p.name.split("-")[1].split(".")[0]) for p in segments]
    assert first_seqs[0] == 1 and first_seqs == sorted(first_seqs)
    with EventLog(folder, segment_bytes=600) as log:
        assert log.last_seq == 40
        log.append([event(event_id="e40")])
        assert log.read(39, 5)[-1].seq == 41


def test_concurrent_appends_lose_nothing_and_share_no_seq(log: EventLog) -> None:
    threads, rounds = 8, 40

    def writer(n: int) -> None:
        for i in range(rounds):
            log.append([event(event_id=f"t{n}-{i}-a"), event(event_id=f"t{n}-{i}-b")])

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    read = log.read(0, 10_000)
    assert [e.seq for e in read] == list(range(1, threads * rounds * 2 + 1))
    assert len({e.event_id for e in read}) == threads * rounds * 2
    # Each call's events stay together and in order.
    for a, b in zip(read[::2], read[1::2], strict=True):
        assert a.event_id.endswith("-a") and b.event_id == a.event_id[:-1] + "b"


def test_wait_for_wakes_on_append(log: EventLog) -> None:
    assert not log.wait_for(0, 0.05)
    timer = threading.Timer(0.1, lambda: log.append([event()]))
    timer.start()
    assert log.wait_for(0, 5)
    timer.join()


# -- planning a batch (no database) ------------------------------------------------------------


def logged(seq: int, kind: str, customer: str, product: str, **extra: Any) -> LoggedEvent:
    e = event(kind, customer, product, ts=T0 + timedelta(minutes=seq), event_id=f"e{seq}", **extra)
    record = {"seq": seq, "received_at": "2024-03-01T10:00:00Z", **e.model_dump(mode="json")}
    return LoggedEvent.from_record(record)


def test_plan_groups_writes_and_dead_letters_what_the_graph_cannot_take() -> None:
    batch = [
        logged(1, "view", "C1", "P1"),
        logged(2, "view", "C1", "P1"),
        logged(3, "click", "C2", "P1"),
        logged(4, "view", "C1", "NOPE"),
        logged(5, "purchase", "C1", "P1", quantity=2, unit_price=3.0, order_id="O1"),
        logged(6, "purchase", "C1", "P1", quantity=1, order_id="O1"),
        logged(7, "purchase", "C2", "P2", order_id="O1"),  # O1 is C1's
        logged(8, "purchase", "C3", "P2", order_id="O-old"),  # placed by C9 in the graph
        logged(9, "purchase", "C2", "P2"),
    ]
    plan = plan_batch(batch, {"P1", "P2"}, {"O-old": "C9"})
    ms = int(T0.timestamp() * 1000)
    assert plan.interactions == {
        "VIEWED": [{"customer_id": "C1", "product_id": "P1", "ts": [ms + 60_000, ms + 120_000]}],
        "CLICKED": [{"customer_id": "C2", "product_id": "P1", "ts": [ms + 180_000]}],
    }
    assert plan.orders == [
        {"order_id": "O1", "customer_id": "C1", "ts": ms + 300_000},
        {"order_id": "event-e9", "customer_id": "C2", "ts": ms + 540_000},
    ]
    assert plan.lines[0] == {
        "order_id": "O1",
        "product_id": "P1",
        "quantity": 3,
        "gross": 6.0,
        "priced_quantity": 2,
        "lines": 2,
    }
    assert plan.buyers == ["C1", "C2"]
    assert [c["customer_id"] for c in plan.customers] == ["C1", "C2"]
    assert {d["seq"]: d["reason"] for d in plan.dead_letters} == {
        4: "product 'NOPE' is not in the graph",
        7: "order 'O1' was placed by customer 'C1', not 'C2'",
        8: "order 'O-old' was placed by customer 'C9', not 'C3'",
    }
    assert plan.dead_letters[0]["event"]["product_id"] == "NOPE"


# -- shipping to the real Neo4j ----------------------------------------------------------------

PRODUCTS = [f"P{i}" for i in range(1, 6)]


def catalog(driver: neo4j.Driver, settings: Settings) -> None:
    apply_schema(
        driver,
        database=settings.neo4j.database,
        embedding_dimensions=settings.app.embedding_dimensions,
    )
    driver.execute_query(
        "UNWIND $ids AS id CREATE (:Product {product_id: id, name: id})",
        {"ids": PRODUCTS},
        database_=settings.neo4j.database,
    )


def stream(n: int, start: int = 0) -> list[Event]:
    """A repeatable mix of kinds, customers (some brand-new) and products; unique times."""
    kinds = ["view", "view", "click", "add_to_cart", "purchase"]
    out = []
    for i in range(start, start + n):
        kind = kinds[i % len(kinds)]
        extra: dict[str, Any] = {}
        if kind == "purchase":
            extra = {"quantity": 1 + i % 3, "unit_price": 2.5}
            if i % 2:
                extra["order_id"] = f"O{i % 7}-C{i % 4}"
        out.append(
            event(
                kind,
                f"C{i % 4}",
                PRODUCTS[(i * 7) % len(PRODUCTS)],
                event_id=f"ev-{i}",
                ts=T0 + timedelta(seconds=i),
                **extra,
            )
        )
    return out


def assert_graph_holds_exactly(driver: neo4j.Driver, database: str, sent: list[Event]) -> None:
    """Every event exactly once: relationship counts and order lines equal what was sent."""
    expected: Counter[tuple[str, str, str]] = Counter()
    quantity: Counter[tuple[str, str]] = Counter()
    lines: Counter[tuple[str, str]] = Counter()
    orders: dict[tuple[str, str], set[str]] = defaultdict(set)
    rel = {"view": "VIEWED", "click": "CLICKED", "add_to_cart": "ADDED_TO_CART"}
    for e in sent:
        if e.kind == "purchase":
            quantity[(e.customer_id, e.product_id)] += e.quantity
            lines[(e.resolved_order_id(), e.product_id)] += 1
            orders[(e.customer_id, e.product_id)].add(e.resolved_order_id())
        else:
            expected[(rel[e.kind], e.customer_id, e.product_id)] += 1
    records = driver.execute_query(
        "MATCH (c:Customer)-[r:VIEWED|CLICKED|ADDED_TO_CART]->(p:Product) "
        "RETURN type(r) AS type, c.customer_id AS c, p.product_id AS p, r.count AS count, "
        "size(r.ts) AS times, r.first_ts = r.ts[0] AND r.last_ts = r.ts[-1] AS ends",
        database_=database,
    ).records
    got = {(r["type"], r["c"], r["p"]): r["count"] for r in records}
    assert got == dict(expected)
    assert all(r["times"] == r["count"] and r["ends"] for r in records)
    contains = driver.execute_query(
        "MATCH (o:Order)-[r:CONTAINS]->(p:Product) "
        "RETURN o.order_id AS o, p.product_id AS p, r.lines AS lines",
        database_=database,
    ).records
    assert {(r["o"], r["p"]): r["lines"] for r in contains} == dict(lines)
    purchased = driver.execute_query(
        "MATCH (c:Customer)-[r:PURCHASED]->(p:Product) "
        "RETURN c.customer_id AS c, p.product_id AS p, r.quantity AS q, r.count AS n",
        database_=database,
    ).records
    assert {(r["c"], r["p"]): r["q"] for r in purchased} == dict(quantity)
    assert {(r["c"], r["p"]): r["n"] for r in purchased} == {k: len(v) for k, v in orders.items()}


@pytest.fixture
def shop(graph: neo4j.Driver, settings: Settings) -> neo4j.Driver:
    catalog(graph, settings)
    return graph


@pytest.mark.integration
def test_a_stream_is_shipped_with_exact_counts(
    shop: neo4j.Driver, settings: Settings, log: EventLog
) -> None:
    db = settings.neo4j.database
    shipper = EventShipper(log, shop, db, batch_size=40, interval_s=0.05)
    shipper.start()
    try:
        sent = stream(300)
        for i in range(0, len(sent), 7):  # storefront calls of a few events each
            log.append(sent[i : i + 7])
        log.append(sent[:5])  # client retries: accepted once
        assert shipper.wait_shipped(log.last_seq, timeout=60), shipper.stats()
    finally:
        assert shipper.stop(10)
    assert log.last_seq == 300
    stats = shipper.stats()
    assert (stats.shipped_seq, stats.pending, stats.dead_lettered) == (300, 0, 0)
    assert stats.last_error is None and stats.last_success_at is not None
    assert_graph_holds_exactly(shop, db, sent)
    # Brand-new customers were created with the earliest time seen; the cursor is in the graph.
    customers = shop.execute_query(
        "MATCH (c:Customer) RETURN c.customer_id AS c, c.first_seen AS first, "
        "c.personalization AS p ORDER BY c",
        database_=db,
    ).records
    assert [(r["c"], r["first"].to_native(), r["p"]) for r in customers] == [
        (f"C{i}", T0 + timedelta(seconds=i), True) for i in range(4)
    ]
    cursor = shop.execute_query(
        "MATCH (c:EventCursor {name: $name}) RETURN c.seq AS seq",
        {"name": log.log_id},
        database_=db,
    ).records
    assert cursor[0]["seq"] == 300


@pytest.mark.integration
def test_neo4j_stopped_mid_stream_loses_and_doubles_nothing(
    shop: neo4j.Driver, settings: Settings, log: EventLog
) -> None:
    if not settings.neo4j.is_managed_locally:
        pytest.skip("needs the local Neo4j the suite manages (it is stopped and started)")
    db = settings.neo4j.database
    server = LocalNeo4j(settings.neo4j, settings.neo4j.local_home(settings.app.home))
    shipper = EventShipper(log, shop, db, batch_size=25, interval_s=0.05, max_backoff_s=1.0)
    accepted: list[Event] = []
    done = threading.Event()

    def storefront() -> None:
        """Calls of a few events each, until told to stop; each acknowledged once durable."""
        start = 0
        while not done.is_set():
            events = stream(4, start)
            log.append(events)
            accepted.extend(events)
            start += 4
            time.sleep(0.01)

    feeder = threading.Thread(target=storefront)
    shipper.start()
    feeder.start()
    try:
        assert shipper.wait_shipped(40, timeout=60), shipper.stats()
        server.stop()
        seq_when_stopped = log.last_seq
        deadline = time.monotonic() + 30
        while shipper.stats().last_error is None and time.monotonic() < deadline:
            time.sleep(0.1)
        down = shipper.stats()
        assert down.last_error is not None  # it noticed, and keeps retrying
        time.sleep(1.0)
        assert shipper.stats().shipped_seq is None  # it will ask the graph where it stands
        assert log.last_seq > seq_when_stopped  # events kept being accepted while Neo4j was down
        assert shipper.stats().pending > 0
    finally:
        server.start()  # later tests need the server, whatever happened here
        time.sleep(1.0)  # the stream goes on after the restart
        done.set()
        feeder.join(timeout=30)
    try:
        assert not feeder.is_alive()
        assert shipper.wait_shipped(log.last_seq, timeout=120), shipper.stats()
    finally:
        shipper.stop(10)
    assert log.last_seq == len(accepted) > seq_when_stopped
    stats = shipper.stats()
    assert stats.pending == 0 and stats.last_error is None
    assert_graph_holds_exactly(shop, db, accepted)


class _Crash(BaseException):
    """Not an Exception: the shipper's retry loop does not catch it, so its thread dies."""


class _CrashAfterCommit(EventShipper):
    """Dies after its first commit, before any local bookkeeping (the worst moment)."""

    def _after_commit(self, new_seq: int, plan: Any) -> None:
        self._stopping.set()
        raise _Crash("simulated crash after commit")


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_crash_after_commit_or_a_second_shipper_ships_nothing_twice(
    shop: neo4j.Driver, settings: Settings, log: EventLog
) -> None:
    db = settings.neo4j.database
    sent = stream(200)
    log.append(sent[:60])
    # The graph holds the first batch, the process never learnt it: a restart must not redo it.
    crashed = _CrashAfterCommit(log, shop, db, batch_size=30)
    crashed.start()
    assert crashed._thread is not None
    crashed._thread.join(30)
    assert crashed.stats().shipped_seq == 0  # its own view never moved
    # A shipper stopped without waiting, then a second one over the same log at once (both may
    # be in flight together: the cursor lock decides).
    first = EventShipper(log, shop, db, batch_size=10, interval_s=0.01)
    first.start()
    log.append(sent[60:120])
    first.stop(timeout=0)
    second = EventShipper(log, shop, db, batch_size=10, interval_s=0.01)
    second.start()
    try:
        log.append(sent[120:])
        assert second.wait_shipped(log.last_seq, timeout=60), second.stats()
    finally:
        second.stop(10)
        first.stop(10)
    assert_graph_holds_exactly(shop, db, sent)


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_unknown_products_go_to_the_dead_letter_file_once(
    shop: neo4j.Driver, settings: Settings, log: EventLog
) -> None:
    db = settings.neo4j.database
    good = [event("view", "C1", "P1", event_id="g1"), event("view", "C1", "P2", event_id="g2")]
    bad = event("click", "C-new", "P-unknown", event_id="b1")
    stolen = event("purchase", "C2", "P1", event_id="b2", order_id="O-1")
    owner = event("purchase", "C1", "P1", event_id="g3", order_id="O-1")
    log.append([good[0], bad, owner, stolen, good[1]])
    shipper = EventShipper(log, shop, db, batch_size=2)
    shipper.start()
    try:
        assert shipper.wait_shipped(log.last_seq, timeout=60), shipper.stats()
    finally:
        shipper.stop(10)
    assert shipper.stats().dead_lettered == 2
    letters = read_dead_letters(log.folder / DEAD_LETTER_FILE)
    assert [(d["seq"], d["event"]["event_id"]) for d in letters] == [(2, "b1"), (4, "b2")]
    assert letters[0]["reason"] == "product 'P-unknown' is not in the graph"
    assert "placed by customer 'C1'" in letters[1]["reason"]
    assert_graph_holds_exactly(shop, db, [*good, owner])
    # The dead-lettered event created nothing: not even its (new) customer.
    assert not shop.execute_query(
        "MATCH (c:Customer {customer_id: 'C-new'}) RETURN c", database_=db
    ).records
    # A crash after the graph committed a batch but before its dead letters reached the file:
    # the cursor keeps the last batch's dead letters, and the next start writes them, once.
    log.append([event("view", "C1", "P-gone", event_id="b3")])
    crashed = _CrashAfterCommit(log, shop, db)
    crashed.start()
    assert crashed._thread is not None
    crashed._thread.join(30)
    assert [d["seq"] for d in read_dead_letters(log.folder / DEAD_LETTER_FILE)] == [2, 4]
    for _ in range(2):
        again = EventShipper(log, shop, db)
        again.start()
        try:
            assert again.wait_shipped(log.last_seq, timeout=30)
        finally:
            again.stop(10)
        assert again.stats().dead_lettered == 3
        letters = read_dead_letters(log.folder / DEAD_LETTER_FILE)
        assert [d["seq"] for d in letters] == [2, 4, 6]
    assert letters[-1]["reason"] == "product 'P-gone' is not in the graph"


# -- the same graph as ingestion ---------------------------------------------------------------


def _interaction_graph(driver: neo4j.Driver, database: str) -> list[Any]:
    records = driver.execute_query(
        "MATCH (c:Customer)-[r:VIEWED|CLICKED|ADDED_TO_CART|PLACED|PURCHASED]->(x) "
        "RETURN c.customer_id AS c, c.first_seen AS first_seen, c.personalization AS p, "
        "type(r) AS type, properties(r) AS props, coalesce(x.product_id, x.order_id) AS x, "
        "properties(x).ts AS x_ts "
        "UNION ALL MATCH (o:Order)-[r:CONTAINS]->(x:Product) "
        "RETURN o.order_id AS c, null AS first_seen, null AS p, 'CONTAINS' AS type, "
        "properties(r) AS props, x.product_id AS x, null AS x_ts",
        database_=database,
    ).records

    def row(data: dict[str, Any]) -> str:
        return repr(
            sorted((k, sorted(v.items()) if isinstance(v, dict) else v) for k, v in data.items())
        )

    return sorted(row(r.data()) for r in records)


@pytest.mark.integration
def test_events_make_the_same_graph_as_ingesting_them(
    graph: neo4j.Driver, settings: Settings, tmp_path: Path
) -> None:
    db = settings.neo4j.database
    catalog_only = tmp_path / "catalog"
    catalog_only.mkdir()
    for name in ("categories.csv", "products.csv"):
        shutil.copy(TINY_SHOP / name, catalog_only / name)
    products = ["P1", "P2", "P3", "P4"]
    sent: list[Event] = []
    for i in range(40):
        kind = ["view", "click", "add_to_cart", "purchase"][i % 4]
        extra: dict[str, Any] = {}
        if kind == "purchase":
            extra = {"quantity": 1 + i % 3, "unit_price": [2.5, 4.0, None][i % 3]}
            extra["order_id"] = f"O{i % 3}-C{i % 2}"
        sent.append(event(kind, f"C{i % 2}", products[i % 4], ts=T0 + timedelta(hours=i), **extra))
    full = tmp_path / "full"
    shutil.copytree(catalog_only, full)
    with (full / "orders.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "customer_id", "product_id", "ts", "quantity", "unit_price"])
        for e in sent:
            if e.kind == "purchase":
                price = "" if e.unit_price is None else e.unit_price
                row = [e.order_id, e.customer_id, e.product_id, e.ts.isoformat(), e.quantity]
                writer.writerow([*row, price])
    with (full / "events.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "product_id", "type", "ts"])
        for e in sent:
            if e.kind != "purchase":
                writer.writerow([e.customer_id, e.product_id, e.kind, e.ts.isoformat()])
    ingest(graph, settings, full)
    ingested = _interaction_graph(graph, db)
    types = {t for (t,) in graph.execute_query("MATCH ()-[r]->() RETURN DISTINCT type(r)").records}
    assert {"VIEWED", "CLICKED", "ADDED_TO_CART", "PLACED", "CONTAINS", "PURCHASED"} <= types
    graph.execute_query("MATCH (n) DETACH DELETE n", database_=db)
    ingest(graph, settings, catalog_only)
    with EventLog(tmp_path / "events") as log:
        shipper = EventShipper(log, graph, db, batch_size=7)
        shipper.start()
        try:
            log.append(sent)
            assert shipper.wait_shipped(log.last_seq, timeout=60), shipper.stats()
        finally:
            shipper.stop(10)
    assert _interaction_graph(graph, db) == ingested
