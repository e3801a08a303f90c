"""Benchmark: serving latency and throughput of the API against the pure-Cypher co-purchase
recommendation, and both NDCG@10 on the temporal split.

Run:
  .venv/bin/python -m bench.serve_latency                 # prepare (cached), then measure
  .venv/bin/python -m bench.serve_latency --prepare-only  # just the graph and the model

1. Prepare (cached under `.kgrec/bench/serve/`): the synthetic shop (50k customers, 10k
   products, about 1M order lines; the same folder as bench.recommend_quality), loaded into a
   local Neo4j; kg-gnn trained with the latest 28 days held out as the test period (validation
   the 28 before; refit on training + validation), registered and activated. Reruns skip what
   is already there.
2. Starts the API (`kgrec serve --workers 2`) and a load generator in a second process
   (bench/loadgen.py) with 16 keep-alive connections on loopback, over the test-period
   customers: the customer top-10 with 3 paths per item, then without paths; each first in a
   closed loop (capacity: requests/s with 16 clients sending back to back), then in an open
   loop at the target rate (200/s with paths, 1,000/s without; latency counted from when each
   request was due), `--repeats` times, each with how the 16 connections split over the two
   workers (`kgrec serve` hands them out evenly; an 11/5 split would load one worker twice the
   other). The API's
   RSS is read after each load.
3. The canonical pure-Cypher co-purchase query ("customers who bought what you bought also
   bought", through the Python driver, 16 threads) on the same customers.
4. NDCG@10 on the test period for both, with the evaluator of gnn/evaluate.py: the served
   engine over a snapshot whose purchases, popularity and co-purchase counts are cut at the
   test start (model vectors trained without the test period), and the Cypher query's ranking
   (sum over the customer's products of co-buyer counts) computed on the same cut; its
   equivalence with the Cypher query is checked on the full graph for a sample of customers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.api_server import Api, serve_env
from bench.recommend_quality import load_once, shop_folder
from gnn import metrics
from gnn.evaluate import Evaluator
from gnn.registry import Registry
from gnn.snapshot import GraphSnapshot, export_snapshot
from gnn.split import temporal_split
from gnn.train import Experiment, RunOptions
from graph.driver import open_driver
from graph.ingest.reader import content_hash, find_files
from graph.keys import KeyStore, Role
from graph.local import LocalNeo4j
from graph.schema import apply_schema
from graph.settings import Neo4jSettings
from graph.synthetic import ShopSpec
from recommender.engine import Engine
from recommender.snapshot import ServingSnapshot, copurchase_counts, load_snapshot

PASSWORD = "bench-password"
LABEL = "serve-bench"
#: The store this benchmark keeps under .kgrec/bench/serve was built with 64-dimensional vector
#: indexes (before the default became 128); its model keeps that size.
DIMENSIONS = 64
COPURCHASE_CYPHER = """
MATCH (c:Customer {customer_id: $customer_id})-[:PURCHASED]->(p:Product)
      <-[:PURCHASED]-(other:Customer)-[:PURCHASED]->(rec:Product)
WHERE other <> c AND NOT (c)-[:PURCHASED]->(rec)
RETURN rec.product_id AS product_id, count(*) AS score
ORDER BY score DESC, product_id
LIMIT 10
"""


def prepare(cache: Path, port: int, spec: ShopSpec) -> tuple[LocalNeo4j, Neo4jSettings]:
    folder = shop_folder("synthetic", cache, spec)
    digest = content_hash(find_files(folder))
    settings = Neo4jSettings(
        uri=f"bolt://127.0.0.1:{port}", password=PASSWORD, heap="3g", pagecache="2g"
    )
    local = LocalNeo4j(settings, (cache / "serve" / "neo4j").resolve())
    local.start()
    with open_driver(settings) as driver:
        apply_schema(driver, database="neo4j", embedding_dimensions=DIMENSIONS)
        load_once(driver, folder, digest)
        registry = Registry(driver, database="neo4j", root=(cache / "serve" / "models").resolve())
        active = registry.active()
        if active is None or LABEL not in str(active.properties.get("training", "")):
            snapshot = export_snapshot(driver, database="neo4j")
            options = RunOptions(
                val_days=28, test_days=28, bootstrap_rounds=0, dimensions=DIMENSIONS
            )
            experiment = Experiment(snapshot, options)
            began = time.monotonic()
            run = experiment.run("kg-gnn", driver=driver, database="neo4j")
            print(f"kg-gnn trained in {time.monotonic() - began:.1f} s", flush=True)
            training = {**run.training(experiment.split, options), "label": LABEL}
            version = registry.register(
                run.model, snapshot=snapshot, metrics=run.metrics(), training=training
            )
            registry.activate(version.version_id, margin=0.0, force=True, reason="benchmark")
            print(f"activated {version.version_id}", flush=True)
    return local, settings


# -- quality on the temporal split ---------------------------------------------------------------
class _Ranked:
    """Adapts a per-customer top list to the evaluator's Recommender interface."""

    embedding_model = False

    def __init__(self, lists: dict[int, list[int]], n_products: int) -> None:
        self.lists = lists
        self.n_products = n_products

    def score(self, customers: np.ndarray) -> np.ndarray:
        out = np.full((len(customers), self.n_products), -1e9, dtype=np.float32)
        for row, customer in enumerate(customers.tolist()):
            for rank, product in enumerate(self.lists.get(customer, [])):
                out[row, product] = 1000 - rank
        return out


def _cut_snapshot(served: ServingSnapshot, graph: GraphSnapshot, before_ms: int) -> ServingSnapshot:
    """The serving snapshot with purchases, popularity and co-purchase as of `before_ms`."""
    keep = graph.ts_ms < before_ms
    index = served.product_index
    to_served = np.array([index[p] for p in graph.maps["product"].ids])
    pairs = np.unique(graph.customer[keep] * graph.n_products + graph.product[keep])
    customers, products = pairs // graph.n_products, to_served[pairs % graph.n_products]
    last = {}
    for c, p, t in zip(
        graph.customer[keep], to_served[graph.product[keep]], graph.ts_ms[keep], strict=True
    ):
        key = (int(c), int(p))
        last[key] = max(last.get(key, 0), int(t))
    bought: dict[str, np.ndarray] = {}
    bought_at: dict[str, np.ndarray] = {}
    ids = graph.maps["customer"].ids
    for customer in np.unique(customers):
        mine = products[customers == customer]
        bought[ids[customer]] = mine
        bought_at[ids[customer]] = np.array([last[(int(customer), int(p))] for p in mine])
    popularity = np.bincount(products, minlength=served.n_products).astype(float)
    segment_popularity: dict[str, np.ndarray] = {}
    for customer_id, items in bought.items():
        segment = served.customer_segment.get(customer_id)
        if segment is not None:
            segment_popularity.setdefault(segment, np.zeros(served.n_products))[items] += 1
    return replace(
        served,
        bought=bought,
        bought_at=bought_at,
        popularity=popularity,
        segment_popularity=segment_popularity,
        copurchase=copurchase_counts(bought, served.n_products),
    )


def quality(
    driver: Any, served: ServingSnapshot, sample: int, seed: int
) -> tuple[dict[str, Any], list[str]]:
    graph = export_snapshot(driver, database="neo4j")
    split = temporal_split(graph, val_days=28, test_days=28)
    evaluator = Evaluator(
        graph, start_ms=split.test_start_ms, end_ms=split.end_ms, period="test"
    ).sample(sample, seed)
    cut = _cut_snapshot(served, graph, split.test_start_ms)
    engine = Engine(cut)
    ids = graph.maps["customer"].ids
    to_graph = {pid: i for i, pid in enumerate(graph.maps["product"].ids)}
    engine_lists = {}
    for user in evaluator.users.tolist():
        items = engine.recommend(ids[user], 20)
        engine_lists[user] = [to_graph[i.product_id] for i in items]
    # The Cypher query's ranking on the same cut: sum of co-buyer counts over what they bought.
    counts = cut.copurchase
    assert counts is not None
    to_served = np.array([served.product_index[p] for p in graph.maps["product"].ids])
    from_served = np.argsort(to_served)
    cypher_lists = {}
    for user in evaluator.users.tolist():
        history = cut.bought.get(ids[user])
        if history is None or not len(history):
            cypher_lists[user] = []
            continue
        scores = np.asarray(counts[history].sum(axis=0)).ravel()
        scores[history] = 0
        order = np.lexsort((np.array(served.product_ids), -scores))
        order = [p for p in order[:20] if scores[p] > 0]
        cypher_lists[user] = [int(from_served[p]) for p in order]
    results: dict[str, Any] = {}
    per_user = {}
    sizes = np.array([len(t) for t in evaluator.targets])
    for name, lists in (("engine", engine_lists), ("cypher co-purchase", cypher_lists)):
        ranked = _Ranked(lists, graph.n_products)
        result = evaluator.evaluate(ranked, rounds=1000, seed=seed)
        ndcg = result.slices["all"].metrics["ndcg@10"]
        results[name] = {"ndcg@10": ndcg, "users": result.slices["all"].users}
        hits = metrics.hit_matrix(evaluator.top_k(ranked, 10), evaluator.targets)
        per_user[name] = metrics.ndcg_at(hits, sizes, 10)
    # Paired: the same customers under both, so the interval of the difference is the test.
    difference = per_user["engine"] - per_user["cypher co-purchase"]
    results["engine minus cypher (paired)"] = {
        "ndcg@10": metrics.bootstrap_mean(difference, rounds=1000, seed=seed)
    }
    return results, [ids[u] for u in evaluator.users.tolist()]


def check_cypher_equivalence(driver: Any, served: ServingSnapshot, customers: list[str]) -> int:
    """The numpy ranking equals the Cypher query's on the full graph (top-10 score lists)."""
    counts = copurchase_counts(served.bought, served.n_products)  # the full matrix
    checked = 0
    for customer in customers:
        history = served.bought.get(customer)
        if history is None:
            continue
        scores = np.asarray(counts[history].sum(axis=0)).ravel()
        scores[history] = 0
        expected = sorted(-s for s in scores if s > 0)[:10]
        records = driver.execute_query(
            COPURCHASE_CYPHER, customer_id=customer, database_="neo4j"
        ).records
        got = [-r["score"] for r in records]
        if got != [int(e) for e in expected]:
            raise AssertionError(f"{customer}: Cypher scores {got} != numpy {expected}")
        checked += 1
    return checked


# -- load --------------------------------------------------------------------------------------
def cypher_load(
    settings: Neo4jSettings, customers: list[str], threads: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    with open_driver(settings) as driver:

        def worker(seed: int) -> None:
            rng = np.random.default_rng(seed)
            mine = []
            while time.perf_counter() < stop_at:
                customer = customers[int(rng.integers(len(customers)))]
                began = time.perf_counter()
                driver.execute_query(COPURCHASE_CYPHER, customer_id=customer, database_="neo4j")
                mine.append(time.perf_counter() - began)
            with lock:
                latencies.extend(mine)

        began = time.perf_counter()
        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {
        "requests": len(ms),
        "rps": round(len(ms) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "concurrency": threads,
    }


def loadgen(
    port: int,
    key: str,
    paths: Path,
    concurrency: int,
    seconds: float,
    rate: float | None = None,
    server: Api | None = None,
) -> dict[str, Any]:
    """bench/loadgen.py in its own process: closed loop, or open loop at `rate`; with the
    `server`, how its connections were spread over the workers (read 2 s in)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--port",
            str(port),
            "--key",
            key,
            "--paths",
            str(paths),
            "--concurrency",
            str(concurrency),
            "--seconds",
            str(seconds),
            *([] if rate is None else ["--rate", str(rate)]),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    split = None
    if server is not None:
        time.sleep(min(2.0, seconds / 2))
        split = server.connections_per_worker()
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"the load generator failed ({process.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if split is not None:
        result["connections_per_worker"] = split
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(".kgrec/bench"))
    parser.add_argument("--neo4j-port", type=int, default=7720)
    parser.add_argument("--api-port", type=int, default=8720)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--warmup",
        type=float,
        default=5,
        help="Seconds of unmeasured closed-loop load before each surface's runs.",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="API processes (kgrec serve).")
    parser.add_argument(
        "--rate-paths", type=float, default=200, help="Open-loop rate of lists with paths."
    )
    parser.add_argument(
        "--rate-plain", type=float, default=1000, help="Open-loop rate of lists without paths."
    )
    parser.add_argument(
        "--customers", type=int, default=2000, help="Test customers the load draws from."
    )
    parser.add_argument(
        "--quality-customers",
        type=int,
        default=1_000_000,
        help="Test customers for NDCG (default: all of them).",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="Open-loop runs per surface (each its own split)."
    )
    parser.add_argument(
        "--surface",
        choices=["both", "paths", "plain"],
        default="both",
        help="Lists with 3 paths, without paths, or both.",
    )
    parser.add_argument(
        "--open-only",
        action="store_true",
        help="Only the open-loop runs (no capacity runs, no Cypher query load).",
    )
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--keep-running", action="store_true", help="Leave Neo4j running.")
    parser.add_argument("--output", type=Path, default=Path(".kgrec/bench/serve-latency.json"))
    args = parser.parse_args()
    spec = ShopSpec(50_000, 10_000, 365, 1)
    local, settings = prepare(args.cache, args.neo4j_port, spec)
    if args.prepare_only:
        if not args.keep_running:
            local.stop()
        return
    report: dict[str, Any] = {}
    try:
        with open_driver(settings) as driver:
            served = load_snapshot(driver, database="neo4j")
            report["quality"], everyone = quality(driver, served, args.quality_customers, seed=0)
            picks = np.random.default_rng(0).permutation(len(everyone))[: args.customers]
            customers = [everyone[i] for i in sorted(picks)]
            print(json.dumps(report["quality"]), flush=True)
            report["cypher_equivalence_checked"] = check_cypher_equivalence(
                driver, served, customers[:50]
            )
            key = KeyStore(driver, database="neo4j").create(Role.storefront, "bench")[1]
        paths_file = args.cache / "serve" / "paths.txt"
        server = Api(
            args.api_port,
            args.workers,
            serve_env(settings, PASSWORD, (args.cache / "serve" / "home").resolve(), 3600),
            None,
        )
        server.start()
        try:
            server.wait_ready(timeout=300)
            surfaces = [
                (label, extra, rate)
                for label, extra, rate, kind in (
                    ("with 3 paths", "paths=3", args.rate_paths, "paths"),
                    ("without paths", "paths=0", args.rate_plain, "plain"),
                )
                if args.surface in ("both", kind)
            ]
            for label, extra, rate in surfaces:
                paths_file.write_text(
                    "\n".join(f"/v1/customers/{c}/recommendations?k=10&{extra}" for c in customers)
                )
                # Warm-up, closed loop (not measured): code paths, caches and the JVM's JIT.
                loadgen(args.api_port, key, paths_file, args.concurrency, args.warmup)
                # Capacity (closed loop), then latency at the target rate (open loop), the
                # latter `--repeats` times: each run's connections split anew over the workers.
                runs = ([] if args.open_only else [(label, None)]) + [
                    (f"{label} at {rate:g}/s" + (f" #{n + 1}" if n else ""), rate)
                    for n in range(args.repeats)
                ]
                for name, at in runs:
                    result = loadgen(
                        args.api_port, key, paths_file, args.concurrency, args.seconds, at, server
                    )
                    result["api_rss_mib"] = round(server.rss_mib())
                    result["workers"] = args.workers
                    report[f"api {name}"] = result
                    print(name, json.dumps(result), flush=True)
        finally:
            server.stop()
        if not args.open_only:
            report["cypher co-purchase"] = cypher_load(
                settings, customers, args.concurrency, args.seconds
            )
            print("cypher", json.dumps(report["cypher co-purchase"]), flush=True)
    finally:
        if not args.keep_running:
            local.stop()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
