"""Benchmark: end-to-end ingestion throughput (files to committed graph) and peak memory.

Run: .venv/bin/python -m bench.ingest_throughput [--customers 50000 --products 10000 --days 365]

1. Generates a synthetic shop (`kgrec generate`, seeded) unless it is already in the cache.
2. Starts a fresh local Neo4j in a temporary home (defaults: 2g heap, 2g page cache), applies
   the schema, and loads the whole shop with `Ingestor` (validate pass + write pass).
3. Times the naive approach on a sample: one transaction per order line, each MERGEing the
   customer, order, PLACED and CONTAINS (what a hand-written loader does), into the same
   server, and reports the ratio.
Peak memory is the Python process's maximum resident set size (ru_maxrss).
"""

from __future__ import annotations

import argparse
import csv
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.neo4j_startup import free_port
from graph.driver import open_driver
from graph.ingest.service import IngestOptions, Ingestor, ProgressSink
from graph.local import LocalNeo4j
from graph.schema import apply_schema
from graph.settings import Neo4jSettings
from graph.synthetic import ShopSpec, generate_shop

NAIVE = """
MERGE (c:Customer {customer_id: $customer_id})
MERGE (o:Order {order_id: $order_id}) SET o.ts = datetime($ts)
MERGE (c)-[:PLACED]->(o)
WITH o MATCH (p:Product {product_id: $product_id})
MERGE (o)-[r:CONTAINS]->(p) SET r.quantity = $quantity
"""


class Timings(ProgressSink):
    """Records how long each phase (validate/write of each file) took."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, float, int]] = []
        self._current: tuple[str, float] | None = None
        self._rows = 0

    def start(self, description: str, total: int) -> None:
        self._close()
        self._current = (description, time.monotonic())
        self._rows = 0

    def advance(self, rows: int) -> None:
        self._rows += rows

    def _close(self) -> None:
        if self._current:
            name, began = self._current
            self.phases.append((name, time.monotonic() - began, self._rows))
            self._current = None

    def finish(self) -> None:
        self._close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--naive-sample", type=int, default=2_000)
    parser.add_argument("--cache", type=Path, default=Path(".kgrec/bench"))
    args = parser.parse_args()

    spec = ShopSpec(args.customers, args.products, args.days, args.seed)
    shop = args.cache / f"shop-{spec.customers}-{spec.products}-{spec.days}-{spec.seed}"
    if not (shop / "relations.csv").exists():
        generated = generate_shop(spec, shop)
        print(f"generated {generated.rows} in {generated.seconds:.1f} s")
    with tempfile.TemporaryDirectory(prefix="kgrec-bench-") as root:
        settings = Neo4jSettings(uri=f"bolt://127.0.0.1:{free_port()}", password="bench-password")
        local = LocalNeo4j(settings, Path(root) / "neo4j")
        local.start()
        try:
            with open_driver(settings) as driver:
                apply_schema(driver, database="neo4j", embedding_dimensions=64)
                timings = Timings()
                ingestor = Ingestor(
                    driver,
                    database="neo4j",
                    options=IngestOptions(batch_size=args.batch_size),
                    progress=timings,
                )
                began = time.monotonic()
                report = ingestor.run(shop)
                total = time.monotonic() - began
                timings.finish()
                naive_rate = naive(driver, shop / "orders.csv", args.naive_sample)
        finally:
            local.stop()
    lines = report.files["orders"].loaded
    rows = sum(f.loaded for f in report.files.values())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"shop: {shop} ({', '.join(f'{n} {f.rows:,}' for n, f in report.files.items())})")
    print(
        f"validate {report.validate_seconds:.1f} s, write {report.write_seconds:.1f} s, "
        f"total {total:.1f} s"
    )
    for name, seconds, count in timings.phases:
        rate = f"{count / seconds:,.0f} rows/s" if seconds > 0 and count else ""
        print(f"  {name:<28} {seconds:7.1f} s  {count:>10,} rows  {rate}")
    print(f"order lines per second, end to end: {lines / total:,.0f}")
    print(f"all rows per second, end to end: {rows / total:,.0f}")
    print(
        f"naive (one transaction per order line, {args.naive_sample} lines): "
        f"{naive_rate:,.0f} lines/s; batched is {lines / total / naive_rate:.1f}x faster"
    )
    print(f"peak Python memory (max RSS): {peak_mib:,.0f} MiB")


def naive(driver: object, orders: Path, sample: int) -> float:
    """Order lines per second with one auto-commit transaction per line."""
    rows = []
    with orders.open() as handle:
        for i, row in enumerate(csv.DictReader(handle)):
            if i >= sample:
                break
            rows.append(row)
    seen: Counter[str] = Counter()
    began = time.monotonic()
    with driver.session(database="neo4j") as session:  # type: ignore[attr-defined]
        for row in rows:
            seen[row["order_id"]] += 1
            session.run(
                NAIVE,
                customer_id=row["customer_id"],
                order_id="naive-" + row["order_id"],
                ts=row["ts"].replace(" ", "T").replace("Z", ""),
                product_id=row["product_id"],
                quantity=int(row["quantity"]),
            ).consume()
    return len(rows) / (time.monotonic() - began)


if __name__ == "__main__":
    main()
