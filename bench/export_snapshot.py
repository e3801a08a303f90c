"""Benchmark: exporting the graph to the models' arrays (`gnn.snapshot.export_snapshot`).

Run: .venv/bin/python -m bench.export_snapshot [--runs 3]

Uses the graph `bench.recommend_quality --shop synthetic` loaded (the 1M-line shop in
`.kgrec/bench/recommend-synthetic-50000-10000/`; run that first), starts its Neo4j, and times
full exports: order lines, storefront events and every knowledge edge, streamed in batches.
"""

from __future__ import annotations

import argparse
import resource
import statistics
from pathlib import Path

from bench.neo4j_startup import free_port
from gnn.snapshot import export_snapshot
from graph.driver import open_driver
from graph.local import LocalNeo4j
from graph.settings import Neo4jSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--home", type=Path, default=Path(".kgrec/bench/recommend-synthetic-50000-10000/neo4j")
    )
    args = parser.parse_args()
    if not (args.home / "data").exists():
        raise SystemExit(f"{args.home} holds no graph: run bench.recommend_quality first")
    settings = Neo4jSettings(uri=f"bolt://127.0.0.1:{free_port()}", password="bench-password")
    local = LocalNeo4j(settings, args.home.resolve())
    local.start()
    seconds = []
    try:
        with open_driver(settings) as driver:
            for run in range(args.runs):
                snapshot = export_snapshot(driver, database="neo4j")
                seconds.append(snapshot.export_seconds)
                print(
                    f"run {run + 1}: {snapshot.counts['interactions']:,} order lines, "
                    f"{snapshot.counts['events']:,} events, "
                    f"{sum(v for k, v in snapshot.counts.items() if k.startswith('edges.')):,} "
                    f"knowledge edges in {snapshot.export_seconds:.1f} s",
                    flush=True,
                )
    finally:
        local.stop()
    print(f"median {statistics.median(seconds):.1f} s, min {min(seconds):.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS): {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
