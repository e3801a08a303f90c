"""Benchmark: the recommendation quality table (every model, one evaluator) and training time.

Run:
  .venv/bin/python -m bench.recommend_quality --shop synthetic   # 50k customers, 10k products
  .venv/bin/python -m bench.recommend_quality --shop superstore  # needs `make datasets`

1. Loads the shop into a local Neo4j kept under `.kgrec/bench/recommend-<shop>/` (the load is
   skipped when the graph already holds an IngestRun with the same content hash, so reruns do
   not pay the ingest again), with Graph Data Science for the FastRP + KNN baseline.
2. Exports the graph (timed), splits by time (defaults: synthetic 28 + 28 days; Superstore the
   last 182 days as test and the 182 before as validation), and runs every model through the
   protocol of `gnn/train.py` (fit with early stopping on validation NDCG@10, refit on training
   plus validation for the chosen epochs, test), the same code as `kgrec evaluate`.
3. Prints the Markdown table (value [95% bootstrap interval]), which models tie with the best,
   the fit times and peak memory, and writes everything to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

from bench.neo4j_startup import free_port
from gnn.models import MODELS
from gnn.report import markdown, ties_with_best, write_json
from gnn.snapshot import export_snapshot
from gnn.train import Experiment, RunOptions, parse_params
from graph.datasets import fetch
from graph.driver import open_driver
from graph.ingest.reader import content_hash, find_files
from graph.ingest.service import IngestOptions, Ingestor
from graph.local import LocalNeo4j
from graph.schema import apply_schema
from graph.settings import Neo4jSettings
from graph.synthetic import ShopSpec, generate_shop

SHOPS = {
    "synthetic": {"val_days": 28, "test_days": 28},
    "superstore": {"val_days": 182, "test_days": 182},
}


def shop_folder(name: str, cache: Path, spec: ShopSpec) -> Path:
    if name == "superstore":
        return fetch("superstore", cache / "datasets").folder
    folder = cache / f"shop-{spec.customers}-{spec.products}-{spec.days}-{spec.seed}"
    if not (folder / "relations.csv").exists():
        shop = generate_shop(spec, folder)
        print(f"generated {shop.rows} in {shop.seconds:.1f} s", flush=True)
    return folder


def load_once(driver: Any, folder: Path, digest: str) -> None:
    """Loads the shop unless the graph already holds a succeeded IngestRun of this content (so
    reruns do not pay the ingest again); another shop's graph is emptied first."""
    loaded = driver.execute_query(
        "MATCH (r:IngestRun {content_hash: $h, status: 'succeeded'}) RETURN count(r) AS n",
        h=digest,
        database_="neo4j",
    ).records[0]["n"]
    if not loaded:
        driver.execute_query("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS")
        began = time.monotonic()
        Ingestor(driver, database="neo4j", options=IngestOptions(batch_size=10_000)).run(folder)
        print(f"ingested {folder} in {time.monotonic() - began:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shop", choices=sorted(SHOPS), default="synthetic")
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--models", default="all")
    parser.add_argument("--val-days", type=int)
    parser.add_argument("--test-days", type=int)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--no-refit", action="store_true")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        help="Model parameter MODEL.NAME=VALUE (repeatable), e.g. kg-gnn.knowledge_edges=false",
    )
    parser.add_argument("--label", help="Suffix for the results file (for variants).")
    parser.add_argument("--cache", type=Path, default=Path(".kgrec/bench"))
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    spec = ShopSpec(args.customers, args.products, args.days, args.seed)
    folder = shop_folder(args.shop, args.cache, spec)
    digest = content_hash(find_files(folder))
    label = (
        args.shop if args.shop == "superstore" else f"synthetic-{spec.customers}-{spec.products}"
    )
    settings = Neo4jSettings(uri=f"bolt://127.0.0.1:{free_port()}", password="bench-password")
    local = LocalNeo4j(settings, (args.cache / f"recommend-{label}" / "neo4j").resolve())
    local.start()
    try:
        with open_driver(settings) as driver:
            apply_schema(driver, database="neo4j", embedding_dimensions=64)
            load_once(driver, folder, digest)
            snapshot = export_snapshot(driver, database="neo4j")
            print(
                f"export: {snapshot.counts['interactions']:,} order lines, "
                f"{snapshot.n_customers:,} customers, {snapshot.n_products:,} products in "
                f"{snapshot.export_seconds:.1f} s",
                flush=True,
            )
            defaults = SHOPS[args.shop]
            names = list(MODELS) if args.models == "all" else args.models.split(",")
            options = RunOptions(
                val_days=args.val_days or defaults["val_days"],
                test_days=args.test_days or defaults["test_days"],
                bootstrap_rounds=args.bootstrap,
                refit=not args.no_refit,
                params=parse_params(args.param, names),
            )
            experiment = Experiment(snapshot, options)
            print(f"split: {experiment.split.describe()}", flush=True)

            def on_epoch(name: str, epoch: int, total: int, loss: float, val: float | None) -> None:
                shown = "" if val is None else f" val NDCG@10 {val:.4f}"
                print(f"  {name} epoch {epoch}/{total} loss {loss:.4f}{shown}", flush=True)

            runs = {}
            for name in names:
                run = experiment.run(name, driver=driver, database="neo4j", on_epoch=on_epoch)
                runs[name] = run
                test = run.test.slices["all"].value("ndcg@10") if run.test else float("nan")
                print(
                    f"{name}: fit {run.fit_seconds:.1f} s + refit {run.refit_seconds:.1f} s "
                    f"(best epoch {run.best_epoch}), test NDCG@10 {test:.4f}, "
                    f"peak RSS {run.peak_rss_mib:,.0f} MiB",
                    flush=True,
                )
    finally:
        local.stop()

    results = {name: run.test for name, run in runs.items() if run.test is not None}
    seconds = {name: run.fit_seconds + run.refit_seconds for name, run in runs.items()}
    print()
    print(markdown(results, seconds))
    print()
    for slice_name in ("all", "cold_customers", "new_products"):
        users = next(iter(results.values())).slices[slice_name].users if results else 0
        print(f"{slice_name}: {users:,} customers")
    print(f"verdict on NDCG@10: {json.dumps(ties_with_best(results))}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS): {peak:,.0f} MiB")
    suffix = f"-{args.label}" if args.label else ""
    output = args.output or args.cache / "results" / f"recommend-{label}{suffix}.json"
    write_json(
        output,
        {
            "shop": label,
            "split": experiment.split.describe(),
            "graph_counts": snapshot.counts,
            "export_seconds": snapshot.export_seconds,
            "models": {
                name: {
                    "params": run.model.params,
                    **run.metrics(),
                    **run.training(experiment.split, options),
                }
                for name, run in runs.items()
            },
        },
    )
    print(f"results: {output}")


if __name__ == "__main__":
    main()
