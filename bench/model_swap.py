"""Benchmark: activating and rolling back a model through the API while it serves lists, and
reading the drift endpoint.

Run:
  .venv/bin/python -m bench.model_swap                  # prepare (cached), then measure
  .venv/bin/python -m bench.model_swap --customers 5000 --products 1000   # a smaller shop

1. Prepare (cached under `.kgrec/bench/swap/`): a synthetic shop (default 20k customers, 2k
   products, a year) in a local Neo4j; two kg-gnn versions (2 epochs, seeds 1 and 2),
   registered; the first active.
2. Starts the API (`kgrec serve`, `--workers` processes) and the load generator
   (bench/loadgen.py, `--concurrency` keep-alive connections, the customer top-10 with
   `--paths` paths per item over 2,000 buyers). First a baseline run of `--seconds`; then a run
   in 5 s chunks during which, 5 s in, the second version is activated through
   `POST /v1/admin/models/{id}/activate` (forced: both have the same metrics) and, 5 s after
   that answered, rolled back through `POST /v1/admin/models/rollback`; the load goes on until
   one chunk after the rollback answered (`from_s`/`to_s`: when each ran, from the load start).
3. Reports both runs (requests, non-200 answers, p50/p90/p99), how long the activation and the
   rollback took (embedding writes for every product and customer, then the snapshot swap),
   the nodes written, and `GET /v1/monitoring/drift?fresh=true` timed a few times.

Writes `.kgrec/bench/model-swap.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.api_server import Api, serve_env
from bench.recommend_quality import load_once, shop_folder
from gnn.models import MODELS, FitContext
from gnn.registry import Registry
from gnn.snapshot import export_snapshot
from graph.driver import open_driver
from graph.ingest.reader import content_hash, find_files
from graph.keys import KeyStore, Role
from graph.local import LocalNeo4j
from graph.schema import apply_schema
from graph.settings import Neo4jSettings
from graph.synthetic import ShopSpec

PASSWORD = "bench-password"
LABEL = "swap-bench"


def prepare(cache: Path, port: int, spec: ShopSpec) -> tuple[LocalNeo4j, Neo4jSettings, list[str]]:
    """The graph and two registered versions (the first active); their ids."""
    folder = shop_folder("synthetic", cache, spec)
    digest = content_hash(find_files(folder))
    settings = Neo4jSettings(
        uri=f"bolt://127.0.0.1:{port}", password=PASSWORD, heap="2g", pagecache="1g"
    )
    local = LocalNeo4j(settings, (cache / "swap" / "neo4j").resolve())
    local.start()
    with open_driver(settings) as driver:
        apply_schema(driver, database="neo4j", embedding_dimensions=64)
        load_once(driver, folder, digest)
        registry = Registry(driver, database="neo4j", root=(cache / "swap" / "models").resolve())
        mine = [
            v
            for v in reversed(registry.versions())
            if LABEL in str(v.properties.get("training", ""))
            and v.properties.get("data_hash") is not None
        ]
        if len(mine) < 2:
            snapshot = export_snapshot(driver, database="neo4j")
            mine = []
            for seed in (1, 2):
                model = MODELS["kg-gnn"](epochs=2, dim=64)
                began = time.monotonic()
                model.fit(snapshot, FitContext(seed=seed))
                print(f"kg-gnn seed {seed} trained in {time.monotonic() - began:.1f} s", flush=True)
                mine.append(
                    registry.register(
                        model, snapshot=snapshot, metrics={}, training={"label": LABEL}
                    )
                )
        first, second = mine[0].version_id, mine[1].version_id
        active = registry.active()
        if active is None or active.version_id != first:
            registry.activate(first, margin=0.0, force=True, reason="benchmark")
    return local, settings, [first, second]


def loadgen(
    port: int, key: str, paths: Path, concurrency: int, seconds: float
) -> subprocess.Popen[str]:
    return subprocess.Popen(
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
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=600)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def timed_post(
    base: str, path: str, key: str, body: dict[str, Any], load_began: float
) -> dict[str, Any]:
    began = time.perf_counter()
    answer = httpx.post(
        base + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=600
    )
    ended = time.perf_counter()
    payload = answer.json()
    return {
        "status": answer.status_code,
        "seconds": round(ended - began, 2),
        "from_s": round(began - load_began, 1),  # into the load run
        "to_s": round(ended - load_began, 1),
        "nodes_written": payload.get("nodes_written"),
        "serving": payload.get("serving"),
        "detail": payload.get("detail"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(".kgrec/bench"))
    parser.add_argument("--neo4j-port", type=int, default=7721)
    parser.add_argument("--api-port", type=int, default=8721)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--paths", type=int, default=1, help="Paths per item in the lists.")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--keep-running", action="store_true", help="Leave Neo4j running.")
    parser.add_argument("--output", type=Path, default=Path(".kgrec/bench/model-swap.json"))
    args = parser.parse_args()
    spec = ShopSpec(args.customers, args.products, 365, 3)
    local, settings, (first, second) = prepare(args.cache, args.neo4j_port, spec)
    report: dict[str, Any] = {
        "shop": {"customers": args.customers, "products": args.products, "days": 365},
        "concurrency": args.concurrency,
        "paths": args.paths,
        "workers": args.workers,
        "versions": [first, second],
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
    }
    try:
        with open_driver(settings) as driver:
            store = KeyStore(driver, database="neo4j")
            storefront = store.create(Role.storefront, "swap bench")[1]
            admin = store.create(Role.admin, "swap bench admin")[1]
            buyers = [
                r["id"]
                for r in driver.execute_query(
                    "MATCH (c:Customer)-[:PURCHASED]->() WITH DISTINCT c "
                    "RETURN c.customer_id AS id ORDER BY id",
                    database_="neo4j",
                ).records
            ]
        picks = np.random.default_rng(0).permutation(len(buyers))[:2000]
        paths_file = args.cache / "swap" / "paths.txt"
        paths_file.write_text(
            "\n".join(
                f"/v1/customers/{buyers[i]}/recommendations?k=10&paths={args.paths}"
                for i in sorted(picks)
            )
        )
        server = Api(
            args.api_port,
            args.workers,
            serve_env(settings, PASSWORD, (args.cache / "swap").resolve(), 5),
            None,
        )
        server.start()
        base = f"http://127.0.0.1:{args.api_port}"
        try:
            server.wait_ready(timeout=300)
            finished(loadgen(args.api_port, storefront, paths_file, args.concurrency, 5))
            report["baseline"] = finished(
                loadgen(args.api_port, storefront, paths_file, args.concurrency, args.seconds)
            )
            print("baseline", json.dumps(report["baseline"]), flush=True)

            # The load runs in chunks of 5 s until the activation and the rollback have both
            # answered and one more chunk has run after them: every change lies inside it.
            load_began = time.perf_counter()
            changes: dict[str, Any] = {}

            def change() -> None:
                time.sleep(5)
                changes["activate"] = timed_post(
                    base,
                    f"/v1/admin/models/{second}/activate",
                    admin,
                    {"force": True, "reason": "benchmark"},
                    load_began,
                )
                time.sleep(5)
                changes["rollback"] = timed_post(
                    base, "/v1/admin/models/rollback", admin, {"reason": "benchmark"}, load_began
                )

            thread = threading.Thread(target=change)
            thread.start()
            chunks: list[dict[str, Any]] = []
            while thread.is_alive() or not chunks or chunks[-1].get("after_changes") is None:
                done = not thread.is_alive()
                chunk = finished(
                    loadgen(args.api_port, storefront, paths_file, args.concurrency, 5)
                )
                chunk["after_changes"] = True if done else None
                chunks.append(chunk)
            thread.join()
            report["during_swaps"] = {
                "seconds": round(time.perf_counter() - load_began, 1),
                "requests": sum(c["requests"] for c in chunks),
                "errors": {
                    status: sum(c["errors"].get(status, 0) for c in chunks)
                    for status in {s for c in chunks for s in c["errors"]}
                },
                "p50_ms_per_5s": [c["p50_ms"] for c in chunks],
                "p99_ms_per_5s": [c["p99_ms"] for c in chunks],
            }
            report["swaps"] = changes
            print("during swaps", json.dumps(report["during_swaps"]), flush=True)
            print("swaps", json.dumps(changes), flush=True)

            drift: list[float] = []
            body: dict[str, Any] = {}
            for _ in range(5):
                began = time.perf_counter()
                answer = httpx.get(
                    f"{base}/v1/monitoring/drift",
                    params={"fresh": "true"},
                    headers={"Authorization": f"Bearer {admin}"},
                    timeout=120,
                )
                drift.append(time.perf_counter() - began)
                body = answer.json()
            report["drift_endpoint"] = {
                "fresh_ms_median": round(float(np.median(drift)) * 1000, 1),
                "fresh_ms_max": round(max(drift) * 1000, 1),
                "signals": [
                    {k: s[k] for k in ("signal", "psi", "status", "observations")}
                    for s in body.get("signals", [])
                ],
            }
            print("drift", json.dumps(report["drift_endpoint"]), flush=True)
        finally:
            server.stop()
    finally:
        if not args.keep_running:
            local.stop()
    report["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
