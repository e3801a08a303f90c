"""Benchmark: explanation paths for a served list (`recommender.explain.Explainer`).

Run against the server that NEO4J_URI (and KGREC_HOME, NEO4J_* settings) name, holding a
synthetic shop, e.g. the issue's 50k customers / 10k products / ~1M order lines:

    .venv/bin/kgrec generate --out /tmp/shop --customers 50000 --products 10000 --days 365 --seed 1
    .venv/bin/kgrec ingest /tmp/shop --batch-size 10000       # about 4-6 min on 2 cores
    .venv/bin/python -m bench.explain_latency [--customers 300] [--items 10] [--per-item 3]
                                              [--clients 1] [--seed 1] [--source graph]

Each of `--customers` random customers with purchases asks for `--items` items: half from
the categories of their purchases (not bought: the paths a personal list needs), half among
the 200 most bought products (the worst case for co-buyer patterns). `for_customer` is timed
per request (one Cypher round trip plus scoring and sentences), after 30 warm-up requests;
then `for_anchors` with one bought product as the anchor. Prints p50/p95/p99 in ms, the paths
found per item, and with `--clients N` the throughput of N threads sharing one driver.
`--source snapshot` answers from the serving snapshot's in-memory path index instead (loaded
first, its load time printed), as storefront lists do.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from graph.cypher import load_cypher
from graph.driver import open_driver
from graph.settings import load_settings
from recommender.explain import Explainer
from recommender.snapshot import load_snapshot


def percentiles(ms: list[float]) -> str:
    ordered = sorted(ms)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return (
        f"p50 {at(0.5):.1f} ms, p95 {at(0.95):.1f} ms, p99 {at(0.99):.1f} ms, "
        f"mean {statistics.fmean(ordered):.1f} ms over {len(ordered)} requests"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--per-item", type=int, default=3)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--source", choices=["graph", "snapshot"], default="graph")
    args = parser.parse_args()
    settings = load_settings()
    database = settings.neo4j.database
    rng = random.Random(args.seed)
    with open_driver(settings.neo4j) as driver:
        catalogue = driver.execute_query(
            load_cypher("bench", "explain_latency_catalogue"), database_=database
        ).records
        by_category: dict[str, list[str]] = {}
        for r in catalogue:
            for category in r["categories"]:
                by_category.setdefault(category, []).append(r["product_id"])
        category_of = {r["product_id"]: r["categories"] for r in catalogue}
        popular = [r["product_id"] for r in sorted(catalogue, key=lambda r: -r["buyers"])[:200]]
        buyers = driver.execute_query(
            load_cypher("bench", "explain_latency_customers"), database_=database
        ).records
        if not buyers:
            raise SystemExit("the graph holds no purchases: ingest a shop first (see --help)")
        print(f"{len(catalogue):,} products, {len(buyers):,} customers with purchases")
        sample = rng.sample(buyers, min(args.customers + 30, len(buyers)))
        requests: list[tuple[str, list[str], str]] = []
        for r in sample:
            bought = set(r["bought"])
            near = [
                pid
                for pid_bought in r["bought"]
                for cat in category_of.get(pid_bought, [])
                for pid in by_category.get(cat, [])
                if pid not in bought
            ]
            items = rng.sample(sorted(set(near)), min(args.items // 2, len(set(near))))
            while len(items) < args.items:
                pid = rng.choice(popular)
                if pid not in items and pid not in bought:
                    items.append(pid)
            requests.append((r["customer_id"], items, rng.choice(r["bought"])))

        index = None
        if args.source == "snapshot":
            began = time.perf_counter()
            index = load_snapshot(driver, database=database).paths
            print(f"snapshot and path index loaded in {time.perf_counter() - began:.1f} s")
        explainer = Explainer(driver, database, per_item=args.per_item)
        for label, call in (
            ("for_customer", lambda req: explainer.for_customer(req[0], req[1], source=index)),
            ("for_anchors", lambda req: explainer.for_anchors([req[2]], req[1], source=index)),
        ):
            run(label, call, requests, args.clients)


def run(
    label: str,
    call: Callable[[tuple[str, list[str], str]], dict[str, list[object]]],
    requests: list[tuple[str, list[str], str]],
    clients: int,
) -> None:
    for req in requests[:30]:  # warm-up: plans cached, pages in memory
        call(req)
    timed = requests[30:]
    ms: list[float] = []
    paths = 0
    items = 0
    kinds: dict[str, int] = {}

    def one(req: tuple[str, list[str], str]) -> float:
        began = time.perf_counter()
        found = call(req)
        elapsed = (time.perf_counter() - began) * 1000
        nonlocal paths, items
        for item_paths in found.values():
            items += 1
            paths += len(item_paths)
            for p in item_paths:
                kind = str(getattr(p, "kind", "?"))
                kinds[kind] = kinds.get(kind, 0) + 1
        return elapsed

    began = time.perf_counter()
    if clients <= 1:
        ms = [one(req) for req in timed]
    else:
        with ThreadPoolExecutor(clients) as pool:
            ms = list(pool.map(one, timed))
    wall = time.perf_counter() - began
    print(f"{label}: {percentiles(ms)}; {len(timed) / wall:.0f} req/s with {clients} client(s)")
    print(f"  {paths / max(items, 1):.2f} paths per item; kinds: {dict(sorted(kinds.items()))}")


if __name__ == "__main__":
    main()
