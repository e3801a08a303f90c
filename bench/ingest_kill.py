"""Fault benchmark: `kgrec ingest` killed (SIGKILL) midway, then run again to completion.

Run: .venv/bin/python -m bench.ingest_kill [--customers 20000 --products 2000 --kill-at 0.5]

1. Generates a synthetic shop (seeded; cached under .kgrec/bench) and starts a fresh local
   Neo4j in a temporary home.
2. Loads it once, cleanly, with `kgrec ingest` (a subprocess, as an operator runs it): the
   reference counts per label and relationship type, and every PURCHASED (count, quantity,
   first_ts, last_ts).
3. Empties the graph, starts the same load again, and kills it with SIGKILL once the given
   share of the order lines (CONTAINS) is committed.
4. Runs the load again to completion and compares with the reference.
Prints: order lines, clean load time, time to kill, rerun time, and whether counts and
PURCHASED equal the clean load's.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import neo4j

from bench.neo4j_startup import free_port
from graph.driver import open_driver
from graph.local import LocalNeo4j
from graph.schema import apply_schema
from graph.settings import Neo4jSettings
from graph.synthetic import ShopSpec, generate_shop

CONTAINS = "MATCH ()-[r:CONTAINS]->() RETURN count(r)"


def counts(driver: neo4j.Driver) -> dict[str, int]:
    labels = driver.execute_query("MATCH (n) RETURN labels(n)[0] AS k, count(*) AS n").records
    types = driver.execute_query("MATCH ()-[r]->() RETURN type(r) AS k, count(*) AS n").records
    found = {r["k"]: r["n"] for r in [*labels, *types]}
    found.pop("IngestRun", None)  # lineage: the killed load keeps its own record
    return found


def purchased(driver: neo4j.Driver) -> dict[tuple[str, str], tuple[Any, ...]]:
    records = driver.execute_query(
        "MATCH (c:Customer)-[r:PURCHASED]->(p:Product) RETURN c.customer_id AS c, "
        "p.product_id AS p, r.count AS n, r.quantity AS q, r.first_ts AS f, r.last_ts AS l"
    ).records
    return {(r["c"], r["p"]): (r["n"], r["q"], r["f"], r["l"]) for r in records}


def scalar(driver: neo4j.Driver, query: str) -> int:
    return int(driver.execute_query(query).records[0][0])


def wipe(driver: neo4j.Driver) -> None:
    # Relationships first: DETACH DELETE of a product with thousands of them in one batch
    # exceeds the transaction memory pool.
    with driver.session() as session:
        session.run(
            "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS"
        ).consume()
        session.run("MATCH (n) CALL (n) { DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()


def ingest_command(shop: Path, batch_size: int) -> list[str]:
    return [sys.executable, "-m", "api.cli", "ingest", str(shop), "--batch-size", str(batch_size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--lines-per-customer", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--kill-at", type=float, default=0.5, help="Share of order lines.")
    parser.add_argument("--cache", type=Path, default=Path(".kgrec/bench"))
    args = parser.parse_args()

    spec = ShopSpec(args.customers, args.products, args.days, args.seed, args.lines_per_customer)
    shop = (
        args.cache
        / f"shop-{spec.customers}-{spec.products}-{spec.days}-{spec.seed}-{spec.lines_per_customer}"
    ).resolve()
    if not (shop / "relations.csv").exists():
        generated = generate_shop(spec, shop)
        print(f"generated {generated.rows} in {generated.seconds:.1f} s")
    with tempfile.TemporaryDirectory(prefix="kgrec-bench-") as root:
        settings = Neo4jSettings(uri=f"bolt://127.0.0.1:{free_port()}", password="bench-password")
        local = LocalNeo4j(settings, Path(root) / "neo4j")
        local.start()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "KGREC_"))},
            "KGREC_HOME": str(Path(root) / "home"),
            "NEO4J_URI": settings.uri,
            "NEO4J_PASSWORD": "bench-password",
            "NEO4J_MANAGED": "no",
        }
        command = ingest_command(shop, args.batch_size)
        try:
            with open_driver(settings) as driver:
                apply_schema(driver, database="neo4j", embedding_dimensions=64)
                began = time.monotonic()
                subprocess.run(command, env=env, check=True, capture_output=True)
                clean_s = time.monotonic() - began
                reference, reference_purchased = counts(driver), purchased(driver)
                lines = reference.get("CONTAINS", 0)
                wipe(driver)

                load = subprocess.Popen(
                    command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                began = time.monotonic()
                while scalar(driver, CONTAINS) < args.kill_at * lines and load.poll() is None:
                    time.sleep(0.05)
                load.send_signal(signal.SIGKILL)
                load.wait()
                kill_s = time.monotonic() - began
                killed_by_us = load.returncode == -signal.SIGKILL
                written = scalar(driver, CONTAINS)
                killed_runs = driver.execute_query(
                    "MATCH (r:IngestRun) RETURN r.status AS status, r.ended_at AS ended"
                ).records

                began = time.monotonic()
                subprocess.run(command, env=env, check=True, capture_output=True)
                rerun_s = time.monotonic() - began
                after, after_purchased = counts(driver), purchased(driver)
        finally:
            local.stop()
    print(f"shop: {shop}")
    with (shop / "orders.csv").open() as orders:
        order_lines = sum(1 for _ in orders) - 1
    print(f"order lines: {order_lines:,} ({lines:,} CONTAINS relationships)")
    print(f"clean load: {clean_s:.1f} s")
    print(
        f"time to kill: {kill_s:.1f} s ("
        + ("SIGKILL sent" if killed_by_us else "too late: the load had ended")
        + f" at {written:,} of {lines:,} CONTAINS, {written / max(lines, 1):.0%})"
    )
    print(
        "killed load's IngestRun: "
        + ", ".join(f"status {r['status']}, ended_at {r['ended']}" for r in killed_runs)
    )
    print(f"rerun to completion: {rerun_s:.1f} s")
    print(f"counts equal: {'yes' if after == reference else 'no'}")
    if after != reference:
        for key in sorted(set(after) | set(reference)):
            if after.get(key) != reference.get(key):
                print(f"  {key}: {after.get(key)} after rerun, {reference.get(key)} clean")
    print(
        f"PURCHASED (count, quantity, first_ts, last_ts) equal: "
        f"{'yes' if after_purchased == reference_purchased else 'no'} "
        f"({len(after_purchased):,} relationships)"
    )


if __name__ == "__main__":
    main()
