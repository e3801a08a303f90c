"""`kgrec serve` as the serving benchmarks run it: its environment, start, readiness of every
worker, kill, stop and resident memory (bench/serve_latency.py, bench/model_swap.py,
bench/faults.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from graph.settings import Neo4jSettings


def serve_env(
    settings: Neo4jSettings,
    password: str,
    home: Path,
    refresh_s: float | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of an API against an already running Neo4j, with no inherited NEO4J_ or
    KGREC_ settings: production mode, its own KGREC_HOME, the snapshot refresh interval (None:
    the default), and `extra` variables."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "KGREC_"))},
        "NEO4J_URI": settings.uri,
        "NEO4J_PASSWORD": password,
        "NEO4J_MANAGED": "no",
        "KGREC_HOME": str(home),
        "KGREC_ENVIRONMENT": "production",
        **extra,
    }
    if refresh_s is not None:
        env["KGREC_SNAPSHOT_REFRESH_S"] = f"{refresh_s:g}"
    return env


class Api:
    """`kgrec serve --workers N` in its own process group (so one signal reaches every worker);
    its output goes to `log` (None: discarded)."""

    def __init__(self, port: int, workers: int, env: dict[str, str], log: Path | None) -> None:
        self.port = port
        self.workers = workers
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.log or Path(os.devnull)).open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "api.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 600) -> float:
        """Seconds until every worker has said `ready` (each loads its own snapshot)."""
        began = time.monotonic()
        ready: set[int] = set()
        while len(ready) < self.workers:
            try:
                answer = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=5).json()
                if answer.get("status") == "ready":
                    ready.add(answer["process_id"])
            except (httpx.HTTPError, ValueError):
                pass
            assert self.process is not None
            if self.process.poll() is not None:
                raise SystemExit(f"the API exited ({self.process.returncode}); see {self.log}")
            if time.monotonic() - began > timeout:
                raise SystemExit(f"the API was not ready in {timeout:.0f} s; see {self.log}")
            time.sleep(0.1)
        return time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL to the whole group: no shutdown handler runs, in-flight requests die."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def rss_mib(self) -> float:
        """Resident memory of the server and all its workers."""
        assert self.process is not None
        try:
            parent = psutil.Process(self.process.pid)
            processes = [parent, *parent.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        return total / 2**20

    def connections_per_worker(self) -> list[int]:
        """Established client connections each worker holds now, busiest first: the busier
        worker sets the tail latency (`kgrec serve` hands connections out evenly; with
        SO_REUSEPORT's hash 16 of them had split 13/3)."""
        assert self.process is not None
        counts = []
        try:
            workers = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return []
        for worker in workers:
            try:
                counts.append(
                    sum(
                        1
                        for c in worker.net_connections(kind="tcp")
                        if c.status == psutil.CONN_ESTABLISHED
                        and c.laddr
                        and c.laddr.port == self.port
                    )
                )
            except psutil.Error:
                continue
        return sorted((c for c in counts if c), reverse=True)
