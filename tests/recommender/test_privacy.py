"""Privacy on the real graph and real files: a customer erased from every store (then searched
for in every one: each node and relationship property, every file under the app home), with a
receipt whose counts match; everyone else untouched; the event logs still ship afterwards; and
retention pruning that removes only old, shipped data."""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pytest
import torch

from api.campaigns import Campaigns
from api.serving import ServingState
from gnn.models import MODELS, FitContext
from gnn.registry import Registry
from gnn.snapshot import export_snapshot
from graph.settings import AppSettings, Settings
from recommender.events import Event, EventLog, EventShipper, prunable_segments
from recommender.privacy import (
    CustomerNotFound,
    LiveState,
    Privacy,
    privacy_key,
    set_personalization,
    subject_digest,
)
from recommender.served import ServedItem, ServedLog
from tests.graph.test_ingest import TINY_SHOP, ingest

pytestmark = pytest.mark.integration

VICTIM = "Zed-4821"
OTHER = "Kim-5532"


def event(kind: str, customer: str, product: str, **extra: Any) -> Event:
    return Event.model_validate(
        {"kind": kind, "customer_id": customer, "product_id": product, **extra}
    )


def shop_folder(tmp: Path) -> Path:
    """The tiny shop plus the customer to erase and one like them, and a bad order line of
    theirs (quarantined to a rejects file)."""
    folder = tmp / "shop"
    shutil.copytree(TINY_SHOP, folder)
    with (folder / "customers.csv").open("a") as out:
        out.write(f"{VICTIM},Consumer,West,2023-03-01,Zed Victim,zed@example.com\n")
        out.write(f"{OTHER},Consumer,West,2023-03-01,Kim Other,kim@example.com\n")
    with (folder / "orders.csv").open("a") as out:
        for customer, order in ((VICTIM, "OZ1"), (OTHER, "OK1")):
            out.write(f"{order},{customer},P1,2023-04-03T10:00:00,1,4.99,0,web\n")
            out.write(f"{order},{customer},P4,2023-04-03T10:00:00,1,399,0,web\n")
        out.write(f"OZ9,{VICTIM},P1,2023-05-02T08:00:00,-3,4.99,0,web\n")
    with (folder / "events.csv").open("a") as out:
        out.write(f"{VICTIM},P5,view,2023-04-12T10:00:00,s9,\n")
        out.write(f"{OTHER},P5,view,2023-04-12T10:00:00,s8,\n")
    return folder


def graph_holding(driver: neo4j.Driver, db: str, text: str) -> list[str]:
    """Every node or relationship with a property (or label/type) that contains `text`."""
    hits = []
    for record in driver.execute_query(
        "MATCH (n) RETURN labels(n) AS what, properties(n) AS props", database_=db
    ).records:
        if text in repr(record["what"]) + repr(record["props"]):
            hits.append(f"node {record['what']} {record['props']}")
    for record in driver.execute_query(
        "MATCH ()-[r]->() RETURN type(r) AS what, properties(r) AS props", database_=db
    ).records:
        if text in record["what"] + repr(record["props"]):
            hits.append(f"relationship {record['what']} {record['props']}")
    return hits


def files_holding(root: Path, text: str) -> list[Path]:
    """Files under `root` whose bytes contain `text`."""
    needle = text.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def log_lines(folder: Path, customer: str) -> int:
    return sum(
        1
        for path in folder.glob("events-*.jsonl")
        for line in path.read_bytes().splitlines()
        if json.loads(line)["customer_id"] == customer
    )


def relationships(driver: neo4j.Driver, db: str, customer: str) -> Counter[str]:
    records = driver.execute_query(
        "MATCH (:Customer {customer_id: $c})-[r]-() RETURN type(r) AS t",
        c=customer,
        database_=db,
    ).records
    return Counter(r["t"] for r in records)


@pytest.fixture
def app(tmp_path: Path, settings: Settings) -> AppSettings:
    return settings.app.model_copy(update={"home": tmp_path / "home", "events_dir": None})


@pytest.fixture
def shipped_shop(
    graph: neo4j.Driver, settings: Settings, app: AppSettings, tmp_path: Path
) -> Iterator[neo4j.Driver]:
    report = ingest(
        graph, settings, shop_folder(tmp_path), mode="quarantine", rejects_dir=app.home / "rejects"
    )
    assert report.rejects_file and VICTIM in Path(report.rejects_file).read_text()
    yield graph


def test_erasure_removes_the_customer_from_every_store(
    shipped_shop: neo4j.Driver, settings: Settings, app: AppSettings
) -> None:
    driver, db = shipped_shop, settings.neo4j.database
    home = app.home.resolve()
    # Opt-out and back in: two audit events that name the customer.
    for enabled in (False, True):
        set_personalization(driver, database=db, customer_id=VICTIM, enabled=enabled, actor="test")
    # A model with embeddings for everyone, active: vectors on the nodes and in the artifacts.
    snapshot = export_snapshot(driver, database=db)
    model = MODELS["kg-gnn"](epochs=2, dim=app.embedding_dimensions)
    model.fit(snapshot, FitContext())
    registry = Registry(driver, database=db, root=home / "models")
    version = registry.register(model, snapshot=snapshot, metrics={}, training={})
    registry.activate(version.version_id, margin=0.0)
    row = snapshot.maps["customer"].ids.index(VICTIM)
    other_row = snapshot.maps["customer"].ids.index(OTHER)

    # Three event logs: this process's (shipper stopped after the first events, so some stay
    # unshipped), one held by a running shipper (it erases on request), one closed.
    events = home / "events"
    log = EventLog(events)
    shipper = EventShipper(log, driver, db, batch_size=100, interval_s=0.05)
    shipper.start()
    log.append(
        [
            event("view", VICTIM, "P1"),
            event("purchase", VICTIM, "P2", quantity=2, unit_price=7.5),
            event("view", OTHER, "P1"),
            event("view", VICTIM, "P-NOPE"),  # unknown product: a dead letter
        ]
    )
    assert shipper.wait_shipped(log.last_seq, 30)
    assert shipper.stop()
    log.append(
        [event("click", VICTIM, "P3"), event("click", OTHER, "P3"), event("view", VICTIM, "P4")]
    )
    held = EventLog(events / "worker-2")
    held_shipper = EventShipper(held, driver, db, batch_size=100, interval_s=0.05)
    held_shipper.start()
    held.append([event("view", VICTIM, "P5"), event("view", OTHER, "P5")])
    assert held_shipper.wait_shipped(held.last_seq, 30)
    with EventLog(events / "worker-3") as closed:
        closed.append([event("add_to_cart", VICTIM, "P1"), event("add_to_cart", OTHER, "P1")])
    cursor_letters = driver.execute_query(
        "MATCH (c:EventCursor {name: $n}) RETURN c.last_dead_letters AS d",
        n=log.log_id,
        database_=db,
    ).records[0]["d"]
    assert any(VICTIM in letter for letter in cursor_letters)

    # Served lists: two written back, one still queued.
    served = ServedLog(driver, database=db, sample_rate=1.0)
    for customer in (VICTIM, OTHER):
        served.record(customer, "home", version.version_id, [ServedItem("P3", 1, "personal")])
    assert served.flush() == 2
    served.record(VICTIM, "home", version.version_id, [ServedItem("P5", 1, "personal")])

    # A campaign export over the customer's segment, from the serving engine.
    state = ServingState(driver, settings.model_copy(update={"app": app}))
    state.refresh()
    assert VICTIM in state.engine.snapshot.customer_index
    campaigns = Campaigns(home / "campaigns")
    job = campaigns.submit(state.engine, "Consumer", 2, "email")
    deadline = time.monotonic() + 30
    while campaigns.get(job.job_id).status not in ("done", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job.status == "done", job.error
    with campaigns.export_path(job.job_id, "csv").open() as handle:
        campaign_rows = sum(1 for r in csv.DictReader(handle) if r["customer_id"] == VICTIM)
    assert campaign_rows > 0

    # What there is to erase, and what must stay.
    before = relationships(driver, db, VICTIM)
    assert {"PURCHASED", "PLACED", "VIEWED", "WAS_RECOMMENDED", "IN_SEGMENT"} <= set(before), before
    other_before = relationships(driver, db, OTHER)
    other_log_lines = {f: log_lines(f, OTHER) for f in (events, held.folder, closed.folder)}
    rejects = next((home / "rejects").glob("*.rejects.csv"))
    reject_rows = len(list(csv.reader(rejects.open()))) - 1
    embedded = driver.execute_query(
        "MATCH (c:Customer {customer_id: $c}) RETURN c.embedding IS NOT NULL AS e",
        c=VICTIM,
        database_=db,
    ).records[0]["e"]
    assert embedded
    last_seq = log.last_seq

    def refresh() -> None:
        state.refresh(force=True)

    privacy = Privacy(driver, database=db, app=app, request_timeout_s=20)
    receipt = privacy.erase(
        VICTIM,
        actor="test",
        live=LiveState(
            event_log=log,
            served=served,
            forget_campaigns=campaigns.forget,
            refresh_snapshot=refresh,
        ),
    )

    # The receipt counts what was there.
    graph = receipt.stores["graph"]
    assert graph["customer_nodes"] == 1 and graph["embeddings"] == 1
    assert graph["relationships"] == sum(before.values())
    assert {k[4:]: v for k, v in graph.items() if k.startswith("rel_")} == dict(before)
    assert graph["orders_anonymised"] == 2  # OZ1 from the load, one from the purchase event
    assert graph["audit_events_redacted"] == 2 and graph["cursor_dead_letters"] == 1
    assert receipt.stores["event_logs"] == {
        "logs": 3,
        "events_shipped": 4,  # 3 in this process's log (one dead-lettered), 1 in worker-2
        "events_unshipped": 3,  # 2 in this process's log, 1 in worker-3
        "dead_letters": 1,
    }
    assert receipt.stores["served_queue"] == {"lists": 1}
    assert receipt.stores["model_artifacts"] == {
        "versions": 1,
        "id_map_entries": 1,
        "embedding_rows": 1,
        "model_rows": 2,  # kg-gnn: the served vectors and the module's node table
    }
    assert receipt.stores["campaign_exports"] == {
        "files": 2,
        "rows": 2 * campaign_rows,
        "job_entries": 1,
    }
    assert receipt.stores["ingest_rejects"] == {"files": 1, "rows": 1}
    assert receipt.stores["serving_snapshot"] == {"refreshed": 1}
    assert receipt.notes == []

    # Nothing of the customer is left: not in the graph, not in any file under the home.
    assert graph_holding(driver, db, VICTIM) == []
    assert files_holding(home, VICTIM) == []
    assert VICTIM not in state.engine.snapshot.customer_index
    saved = torch.load(version.artifacts / "model.pt", weights_only=False)["state"]
    assert not saved["users"][row].any() and saved["users"][other_row].any()
    vectors = np.load(version.artifacts / "embeddings.npz")["customers"]
    assert not vectors[row].any() and vectors[other_row].any()

    # The receipt itself: an AuditEvent without the id, found again by the keyed hash.
    subject = subject_digest(privacy_key(app), VICTIM)
    assert receipt.subject == subject and VICTIM not in receipt.model_dump_json()
    assert [r["erasure_id"] for r in privacy.erasures(VICTIM)] == [receipt.erasure_id]

    # Everyone else is untouched; the anonymous order stays.
    assert relationships(driver, db, OTHER) == other_before
    assert {f: log_lines(f, OTHER) for f in other_log_lines} == other_log_lines
    assert len(list(csv.reader(rejects.open()))) - 1 == reject_rows - 1
    maps = json.loads((version.artifacts / "id_maps.json").read_text())
    assert maps["customer"][row] is None and maps["customer"][other_row] == OTHER
    order = driver.execute_query(
        "MATCH (o:Order {order_id: 'OZ1'}) RETURN o.customer_erased_at IS NOT NULL AS erased, "
        "COUNT { (o)-[:CONTAINS]->() } AS lines, COUNT { (o)<-[:PLACED]-() } AS placed",
        database_=db,
    ).records[0]
    assert order["erased"] and order["lines"] == 2 and order["placed"] == 0

    # Erasing again is safe: nothing is left to find.
    with pytest.raises(CustomerNotFound, match="in none of kgrec's stores"):
        privacy.erase(VICTIM, actor="test", live=LiveState(event_log=log))

    # The logs go on: the held one ships, and this one reopens at the same high-water mark.
    held.append([event("view", OTHER, "P2")])
    assert held_shipper.wait_shipped(held.last_seq, 30)
    held_shipper.stop()
    held.close()
    log.close()
    with EventLog(events) as reopened:
        assert reopened.last_seq == last_seq
        restarted = EventShipper(reopened, driver, db, batch_size=100, interval_s=0.05)
        restarted.start()
        try:
            reopened.append([event("view", OTHER, "P2")])
            assert restarted.wait_shipped(reopened.last_seq, 30)
            assert restarted.stats().last_error is None
        finally:
            restarted.stop()
    clicks = driver.execute_query(
        "MATCH (:Customer {customer_id: $c})-[r:CLICKED]->(:Product {product_id: 'P3'}) "
        "RETURN r.count AS n",
        c=OTHER,
        database_=db,
    ).records
    assert [r["n"] for r in clicks] == [1]  # the other customer's unshipped click shipped once
    campaigns.stop()


def test_retention_prunes_only_old_shipped_data(
    graph: neo4j.Driver, settings: Settings, app: AppSettings
) -> None:
    driver, db = graph, settings.neo4j.database
    ingest(driver, settings, TINY_SHOP)  # its views, carts and ratings are from 2023
    home = app.home.resolve()
    log = EventLog(home / "events", segment_bytes=600)  # a few events per segment
    shipper = EventShipper(log, driver, db, batch_size=7, interval_s=0.05)
    shipper.start()
    for i in range(20):  # one call each: a segment rotates between calls, not inside one
        log.append([event("view", f"C{i % 3 + 1}", "P1")])
    assert shipper.wait_shipped(log.last_seq, 30)
    assert shipper.stop()
    for _ in range(12):  # not shipped
        log.append([event("click", "C1", "P2")])
    unshipped_seqs = set(range(21, 33))
    segments = log.segments()
    assert len(segments) > 4
    served = ServedLog(driver, database=db, sample_rate=1.0)
    now = datetime.now(UTC)
    served.record("C1", "home", None, [ServedItem("P2", 1, "personal")], ts=now - timedelta(400))
    served.record("C1", "home", None, [ServedItem("P3", 1, "personal")], ts=now)
    assert served.flush() == 2
    orders_before = driver.execute_query(
        "MATCH (o:Order) RETURN count(o) AS n, COUNT { ()-[:PURCHASED]->() } AS p",
        database_=db,
    ).records[0]
    privacy = Privacy(driver, database=db, app=app)

    # A 30-day window: nothing in the log is that old yet; in the graph, 2023's event times go
    # (and relationships left without any), today's shipped views stay, the old served list
    # goes, orders stay.
    fresh = privacy.prune(30, actor="test")
    assert fresh.segments == 0 and fresh.log_events == 0
    assert log.segments() == segments
    views = driver.execute_query(
        "MATCH (c:Customer)-[r:VIEWED]->(p:Product) "
        "RETURN c.customer_id AS c, p.product_id AS p, r.count AS n",
        database_=db,
    ).records
    assert {(r["c"], r["p"]): r["n"] for r in views} == {
        ("C1", "P1"): 7,
        ("C2", "P1"): 7,
        ("C3", "P1"): 6,
    }
    assert fresh.graph["VIEWED"] == {"event_times": 3, "relationships_deleted": 2}
    assert fresh.graph["ADDED_TO_CART"] == {"event_times": 1, "relationships_deleted": 1}
    assert fresh.graph["RATED"] == {"event_times": 1, "relationships_deleted": 1}
    assert fresh.graph["WAS_RECOMMENDED"] == {"relationships_deleted": 1}
    remaining = driver.execute_query(
        "MATCH ()-[r:WAS_RECOMMENDED]->(p) RETURN p.product_id AS p", database_=db
    ).records
    assert [r["p"] for r in remaining] == ["P3"]
    orders_after = driver.execute_query(
        "MATCH (o:Order) RETURN count(o) AS n, COUNT { ()-[:PURCHASED]->() } AS p",
        database_=db,
    ).records[0]
    assert dict(orders_after) == dict(orders_before)

    # Seen from 2 days ahead with a 1-day window, every event is old: only the shipped
    # segments go, never one holding an unshipped event nor the one being written.
    report = privacy.prune(1, actor="test", now=now + timedelta(days=2))
    left = [p for p in segments if p.exists()]
    assert report.segments == len(segments) - len(left) > 0
    kept_seqs = {json.loads(line)["seq"] for p in left for line in p.read_bytes().splitlines()}
    assert unshipped_seqs <= kept_seqs
    assert report.log_events == 32 - len(kept_seqs)
    assert segments[-1] in left
    assert report.graph["VIEWED"] == {"event_times": 20, "relationships_deleted": 3}
    audits = driver.execute_query(
        "MATCH (e:AuditEvent {action: 'prune_events'}) RETURN count(e) AS n", database_=db
    ).records[0]["n"]
    assert audits == 2

    # The log still ships what was left, exactly once.
    shipper = EventShipper(log, driver, db, batch_size=7, interval_s=0.05)
    shipper.start()
    try:
        assert shipper.wait_shipped(log.last_seq, 30)
        assert shipper.stats().last_error is None
    finally:
        shipper.stop()
        log.close()
    clicks = driver.execute_query(
        "MATCH (:Customer {customer_id: 'C1'})-[r:CLICKED]->(:Product {product_id: 'P2'}) "
        "RETURN r.count AS n",
        database_=db,
    ).records
    assert [r["n"] for r in clicks] == [12]


def test_a_held_log_reads_and_erases_on_after_retention_deleted_its_old_segments(
    tmp_path: Path,
) -> None:
    with EventLog(tmp_path / "events", segment_bytes=600) as log:
        for i in range(12):
            log.append([event("view", VICTIM if i % 4 == 0 else OTHER, "P1")])
        first_segment_end = int(log.segments()[1].name[len("events-") : -len(".jsonl")]) - 1
        # The reader stops exactly at the end of the first segment (its hint points there).
        assert [e.seq for e in log.read(0, first_segment_end)] == list(
            range(1, first_segment_end + 1)
        )
        future = datetime.now(UTC) + timedelta(days=1)
        pruned = prunable_segments(log.folder, first_segment_end, future)
        assert [p.path for p in pruned] == log.segments()[:1]
        pruned[0].path.unlink()
        rest = log.read(first_segment_end, 100)
        assert [e.seq for e in rest] == list(range(first_segment_end + 1, 13))
        erased = log.erase(lambda c: c == VICTIM)
        assert erased.events == [s for s in (1, 5, 9) if s > first_segment_end]
        assert all(e.customer_id == OTHER for e in log.read(first_segment_end, 100))


def test_erasures_are_reapplied_when_a_store_holds_the_customer_again(
    shipped_shop: neo4j.Driver, settings: Settings, app: AppSettings, tmp_path: Path
) -> None:
    """The ledger (outside the graph and outside backups) finds a customer a restored backup
    or a re-ingested file brought back, by keyed hash, and erases them again."""
    driver, db = shipped_shop, settings.neo4j.database
    privacy = Privacy(driver, database=db, app=app)
    first = privacy.erase(VICTIM, actor="test")
    ledger = (app.home / "erasures.jsonl").read_text()
    assert first.erasure_id in ledger and first.subject in ledger and VICTIM not in ledger
    assert privacy.reapply_erasures(actor="test") == []  # nothing came back yet

    # The old source files are loaded again, and an old event log holds an unshipped event.
    ingest(
        driver,
        settings,
        shop_folder(tmp_path / "again"),
        mode="quarantine",
        rejects_dir=app.home / "rejects",
    )
    assert graph_holding(driver, db, VICTIM)
    log = EventLog(app.home / "events")
    log.append([event("view", VICTIM, "P1"), event("view", OTHER, "P1")])
    log.close()
    other_before = relationships(driver, db, OTHER)

    receipts = privacy.reapply_erasures(actor="test")
    assert len(receipts) == 1 and receipts[0].subject == first.subject
    assert receipts[0].stores["graph"]["customer_nodes"] == 1
    assert graph_holding(driver, db, VICTIM) == []
    assert files_holding(app.home, VICTIM) == []
    assert log_lines(app.home / "events", OTHER) == 1
    assert relationships(driver, db, OTHER) == other_before
    assert privacy.reapply_erasures(actor="test") == []
