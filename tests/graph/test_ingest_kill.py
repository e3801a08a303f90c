"""`kgrec ingest` killed with SIGKILL midway, then run again: the graph ends exactly as after one
clean load of the same folder (every node, relationship and property; PURCHASED included), and
the killed load's IngestRun stays recognisable as unfinished."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import neo4j
import pytest

from graph.settings import Settings
from graph.synthetic import ShopSpec, generate_shop
from tests.api.test_cli import KGREC, environment, run_kgrec, session_server_env
from tests.conftest import wipe
from tests.graph.test_ingest import counts, expected_purchased, ingest, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# About 15,000 order lines (and as many events): a load takes tens of seconds on a busy
# two-core machine, long enough to be killed in the middle of either phase.
SHOP = ShopSpec(customers=1_500, products=300, days=120, seed=11, lines_per_customer=10)
# Small batches: many transactions, so the kill lands between committed ones.
BATCH = "500"

# When to kill: once the load has committed some of this, and before it has it all.
PHASES = {
    "orders": "MATCH ()-[r:CONTAINS]->() RETURN count(r)",
    "events": "MATCH (:Customer)-[r:VIEWED|CLICKED|ADDED_TO_CART]->() RETURN count(r)",
}


def purchased_full(driver: neo4j.Driver) -> dict[tuple[str, str], tuple[object, ...]]:
    records = driver.execute_query(
        "MATCH (c:Customer)-[r:PURCHASED]->(p:Product) RETURN c.customer_id AS c, "
        "p.product_id AS p, r.count AS n, r.quantity AS q, r.first_ts AS f, r.last_ts AS l"
    ).records
    return {(r["c"], r["p"]): (r["n"], r["q"], r["f"], r["l"]) for r in records}


def scalar(driver: neo4j.Driver, query: str) -> int:
    return int(driver.execute_query(query).records[0][0])


def ingest_runs(driver: neo4j.Driver) -> list[dict[str, object]]:
    records = driver.execute_query("MATCH (r:IngestRun) RETURN r ORDER BY r.started_at").records
    return [dict(r["r"]) for r in records]


@dataclass(frozen=True)
class CleanLoad:
    """The graph after one clean load of the shop into an empty database."""

    folder: Path
    snapshot: tuple[list[Any], list[Any]]
    counts: dict[str, int]
    purchased: dict[tuple[str, str], tuple[object, ...]]
    phase_totals: dict[str, int]


@pytest.fixture(scope="module")
def clean_load(
    neo4j_driver: neo4j.Driver, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> CleanLoad:
    """Loaded once for every kill point (a load takes a while); each test empties the graph."""
    folder = generate_shop(SHOP, tmp_path_factory.mktemp("kill") / "shop").folder
    wipe(neo4j_driver, settings.neo4j.database)
    ingest(neo4j_driver, settings, folder, batch_size=int(BATCH))
    reference = CleanLoad(
        folder=folder,
        snapshot=snapshot(neo4j_driver),
        counts=counts(neo4j_driver),
        purchased=purchased_full(neo4j_driver),
        phase_totals={phase: scalar(neo4j_driver, query) for phase, query in PHASES.items()},
    )
    wipe(neo4j_driver, settings.neo4j.database)
    return reference


@pytest.mark.parametrize("phase", list(PHASES))
def test_ingest_killed_midway_then_rerun_equals_one_clean_load(
    graph: neo4j.Driver, settings: Settings, clean_load: CleanLoad, phase: str, tmp_path: Path
) -> None:
    if not settings.neo4j.is_managed_locally:
        pytest.skip("the CLI subprocess needs the suite's own server")
    shop, total = clean_load.folder, clean_load.phase_totals[phase]
    env = session_server_env(settings)
    errors = tmp_path / "killed-load.stderr"
    with errors.open("w") as stderr:
        load = subprocess.Popen(
            [*KGREC, "ingest", str(shop), "--batch-size", BATCH],
            env=environment(env),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 300
        while scalar(graph, PHASES[phase]) == 0 and load.poll() is None:
            assert time.monotonic() < deadline, "the load wrote nothing in 5 minutes"
            time.sleep(0.05)
        load.send_signal(signal.SIGKILL)
        load.wait(timeout=30)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    assert load.returncode == -signal.SIGKILL, f"the load ended by itself: {errors.read_text()}"
    written = scalar(graph, PHASES[phase])
    assert 0 < written < total, f"killed at {written} of {total}: not midway"
    assert counts(graph) != clean_load.counts

    # The killed load's lineage: still "running", no end time (nothing could record its death).
    [killed] = ingest_runs(graph)
    assert killed["status"] == "running" and killed.get("ended_at") is None
    assert killed["pid"] == load.pid  # with its host: an operator can see the process is gone

    rerun = run_kgrec("ingest", str(shop), "--batch-size", BATCH, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr

    # Every count but the lineage (the killed load's IngestRun stays, see below).
    assert counts(graph) == {**clean_load.counts, "IngestRun": 2}
    assert purchased_full(graph) == clean_load.purchased
    assert {pair: v[:2] for pair, v in purchased_full(graph).items()} == expected_purchased(
        shop / "orders.csv"
    )
    assert snapshot(graph) == clean_load.snapshot
    runs = ingest_runs(graph)
    assert [r["status"] for r in runs] == ["running", "succeeded"]
    assert runs[0]["run_id"] == killed["run_id"]
    assert runs[0]["content_hash"] == runs[1]["content_hash"]
