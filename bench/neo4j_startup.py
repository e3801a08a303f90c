"""Benchmark: cold start time and resident memory of the local Neo4j.

Run: .venv/bin/python -m bench.neo4j_startup [--runs 3]

Each run starts the launcher in a new, empty home (a cold start: new store, JIT cold), waits
for Bolt (`verify_connectivity`), reads the Java process's resident memory, then stops it. A
second start on the same home measures a warm restart (existing store). Heap and page cache are
the defaults of `Neo4jSettings` unless NEO4J_HEAP / NEO4J_PAGECACHE say otherwise.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from pathlib import Path

from graph.local import LocalNeo4j
from graph.settings import Neo4jSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def one_run(root: Path) -> dict[str, float]:
    settings = Neo4jSettings(uri=f"bolt://127.0.0.1:{free_port()}", password="bench-password")
    local = LocalNeo4j(settings, root / "neo4j")
    began = time.monotonic()
    local.start()
    cold = time.monotonic() - began
    time.sleep(2)  # let start-up threads settle before reading memory
    rss = (local.status().resident_memory_bytes or 0) / 2**20
    stop = local.stop().seconds
    began = time.monotonic()
    local.start()
    warm = time.monotonic() - began
    local.stop()
    return {"cold_s": cold, "warm_s": warm, "rss_mib": rss, "stop_s": stop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    defaults = Neo4jSettings()
    print(f"heap {defaults.heap}, page cache {defaults.pagecache}, {args.runs} runs")
    results = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="kgrec-bench-") as root:
            result = one_run(Path(root))
        results.append(result)
        print(
            f"run {run}: cold start {result['cold_s']:.1f} s, "
            f"warm restart {result['warm_s']:.1f} s, "
            f"RSS after start {result['rss_mib']:.0f} MiB, stop {result['stop_s']:.1f} s"
        )
    for key, label in [
        ("cold_s", "cold start to Bolt ready (s)"),
        ("warm_s", "warm restart to Bolt ready (s)"),
        ("rss_mib", "resident memory after start (MiB)"),
        ("stop_s", "clean stop (s)"),
    ]:
        values = [r[key] for r in results]
        median = statistics.median(values)
        print(f"{label}: median {median:.1f}, min {min(values):.1f}, max {max(values):.1f}")


if __name__ == "__main__":
    main()
