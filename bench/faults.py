"""Benchmark: faults survived under load, and a soak at a fixed rate.

Scenarios (`--scenario`):

* `neo4j-restart`: the API serves a mixed open-loop load (customer lists with paths, and
  purchase events); Neo4j is stopped (SIGTERM, or SIGKILL with `--kill`) for `--down-s`
  seconds and started again. Expected: lists keep succeeding (from the snapshot, with paths
  from its index; `degraded: true` without paths with `KGREC_EXPLANATION_SOURCE=graph`), every
  acknowledged event reaches the graph exactly once.
* `api-kill`: the same load; the whole API (its process group, every worker) is SIGKILLed with
  requests and events in flight, and started again after `--down-s` seconds. Expected: every
  event acknowledged with 202 before the kill is in the graph exactly once; requests that failed
  while it was down are the scenario's client-visible errors.
* `soak`: `--duration` seconds at `--rate` requests/s (lists, `--paths` per item; events with
  `--event-share`), the API's RSS (all worker processes) sampled every `--sample-s` seconds.

Each event is a purchase with a unique `event_id`, so its order in the graph is
`event-<event_id>` and holds one purchase line per time it was shipped: the count of events
lost (acknowledged, not in the graph) and doubled (more than one line) is exact. The events'
customers are the run's own (`faults-<run>-c<n>`) and are deleted from the graph afterwards
(`--keep` leaves them).

The load is open-loop: requests start on a fixed schedule whatever the answers do, and a
request's latency counts from its scheduled start (waiting for a free connection included), so
a stall shows up in the percentiles instead of slowing the load down.

`--scale full` is bench.serve_latency's shop (50k customers, 10k products, about 1M order
lines; prepared and cached there, Neo4j on port 7720 with a 3 GB heap); `--scale small` a shop
of 2,000 customers for trying the scenarios quickly (its own Neo4j on port 7723).

  .venv/bin/python -m bench.faults --scenario neo4j-restart --scale small
  .venv/bin/python -m bench.faults --scenario api-kill --scale small
  .venv/bin/python -m bench.faults --scenario soak --duration 600 --rate 200 --paths 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.api_server import Api, serve_env
from bench.serve_latency import PASSWORD, prepare
from graph.cypher import load_cypher
from graph.driver import open_driver
from graph.keys import KeyStore, Role
from graph.local import LocalNeo4j
from graph.settings import Neo4jSettings
from graph.synthetic import ShopSpec
from recommender.events import read_dead_letters

#: Reuse a keep-alive connection only if idle less than this (uvicorn closes them at 5 s).
IDLE_REUSE_S = 3.0

SCALES = {
    "full": (ShopSpec(50_000, 10_000, 365, 1), 7720, Path(".kgrec/bench")),
    "small": (ShopSpec(2_000, 300, 120, 5), 7723, Path(".kgrec/bench/faults-small")),
}


# -- the load ------------------------------------------------------------------------------------
@dataclass
class Outcome:
    scheduled: float  # seconds since the load began
    sent: float  # when it got a connection and went out (after any wait for a free one)
    kind: str  # "list" or "event"
    status: str  # "200", "202", "503", ..., or the transport error ("refused", "reset", "timeout")
    latency_ms: float
    degraded: bool = False
    event_id: str | None = None


@dataclass
class Load:
    """Open-loop mixed load over raw keep-alive HTTP/1.1 connections (as bench/loadgen.py:
    cheap per request, since the generator shares the CPU with the server)."""

    port: int
    key: str
    rate: float
    event_share: float
    list_paths: list[str]
    products: list[str]
    run_id: str
    concurrency: int = 64
    timeout_s: float = 30.0
    seed: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    unsent: int = 0  # still waiting for a connection when the load ended
    began: float = 0.0
    # Keep-alive connections not in use, with when each was last answered on.
    _idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = field(
        default_factory=list
    )

    def event_body(self, n: int) -> tuple[str, bytes]:
        event_id = f"{self.run_id}-{n}"
        event = {
            "event_id": event_id,
            "kind": "purchase",
            "customer_id": f"faults-{self.run_id}-c{n % 500}",
            "product_id": self.products[n % len(self.products)],
            "quantity": 1,
            "unit_price": 1.0,
        }
        return event_id, json.dumps([event]).encode()

    async def run(self, seconds: float, stop: asyncio.Event | None = None) -> None:
        rng = random.Random(self.seed)
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        self.began = time.perf_counter()
        n = 0
        while True:
            due = self.began + n / self.rate
            if due - self.began >= seconds or (stop is not None and stop.is_set()):
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if rng.random() < self.event_share:
                event_id, body = self.event_body(n)
                request = self._request("POST", "/v1/events", body)
                task = asyncio.create_task(self._send(slots, due, "event", request, event_id))
            else:
                path = self.list_paths[rng.randrange(len(self.list_paths))]
                task = asyncio.create_task(
                    self._send(slots, due, "list", self._request("GET", path))
                )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        # In-flight requests get their timeout to finish; requests still queued for a connection
        # behind an overloaded server are not sent at all (counted in `unsent`).
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.timeout_s + 5)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()

    def _request(self, method: str, path: str, body: bytes = b"") -> bytes:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.key}\r\n"
            "Connection: keep-alive\r\n"
        )
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return (head + "\r\n").encode() + body

    async def _send(
        self,
        slots: asyncio.Semaphore,
        due: float,
        kind: str,
        request: bytes,
        event_id: str | None = None,
    ) -> None:
        try:
            await slots.acquire()
        except asyncio.CancelledError:
            self.unsent += 1
            raise
        try:
            await self._send_now(due, kind, request, event_id)
        finally:
            slots.release()

    async def _send_now(self, due: float, kind: str, request: bytes, event_id: str | None) -> None:
        connection = None
        sent = time.perf_counter() - self.began
        try:
            connection = self._reusable() or await asyncio.wait_for(self._connect(), self.timeout_s)
            status, body = await asyncio.wait_for(
                self._exchange(connection, request), self.timeout_s
            )
            self._idle.append((*connection, time.perf_counter()))
            outcome = status
        except (ConnectionRefusedError, OSError, asyncio.IncompleteReadError) as exc:
            outcome = _transport_error(exc)
            body = b""
            if connection is not None:
                connection[1].close()
        except TimeoutError:
            outcome, body = "timeout", b""
            if connection is not None:
                connection[1].close()
        except asyncio.CancelledError:
            outcome, body = "cancelled at the end", b""
            if connection is not None:
                connection[1].close()
        latency = (time.perf_counter() - due) * 1000
        self.outcomes.append(
            Outcome(
                scheduled=due - self.began,
                sent=sent,
                kind=kind,
                status=outcome,
                latency_ms=latency,
                degraded=b'"degraded":true' in body,
                event_id=event_id,
            )
        )

    def _reusable(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The most recently used idle connection that the server has not closed for idling:
        uvicorn closes a keep-alive connection after 5 s idle, and a request written into one
        as it closes meets a reset that is the client's race, not the server's error."""
        while self._idle:
            reader, writer, last = self._idle.pop()
            if time.perf_counter() - last < IDLE_REUSE_S:
                return reader, writer
            writer.close()
        return None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    @staticmethod
    async def _exchange(
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> tuple[str, bytes]:
        reader, writer = connection
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise asyncio.IncompleteReadError(b"", None)
        length, chunked = 0, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
            elif name.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        if chunked:
            parts = []
            while True:
                size = int((await reader.readline()).strip(), 16)
                parts.append((await reader.readexactly(size + 2))[:size])
                if size == 0:
                    break
            body = b"".join(parts)
        else:
            body = await reader.readexactly(length)
        return status_line.split(b" ", 2)[1].decode(), body


def _transport_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, asyncio.IncompleteReadError | ConnectionResetError | BrokenPipeError):
        return "reset"
    return type(exc).__name__


# -- figures -------------------------------------------------------------------------------------
def summarise(
    outcomes: list[Outcome], start: float = 0.0, end: float = float("inf")
) -> dict[str, Any]:
    """Requests sent in [start, end): served (2xx), errors by status, latency percentiles (from
    the scheduled start). By the time sent, not scheduled: under a backlog a request scheduled
    before a fault may only go out during it, and it is the fault it meets."""
    mine = [o for o in outcomes if start <= o.sent < end]
    ok = [o for o in mine if o.status.startswith("2")]
    errors = Counter(f"{o.kind} {o.status}" for o in mine if not o.status.startswith("2"))
    ms = np.array([o.latency_ms for o in ok]) if ok else np.array([0.0])
    return {
        "requests": len(mine),
        "served": len(ok),
        "lists served": sum(o.kind == "list" for o in ok),
        "lists degraded": sum(o.degraded for o in ok),
        "events acknowledged": sum(o.kind == "event" for o in ok),
        "errors": sum(errors.values()),
        "errors by kind": dict(sorted(errors.items())),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


def timeline(outcomes: list[Outcome], step: float) -> list[dict[str, Any]]:
    """Per `step` seconds (by the time sent): requests, served, degraded, errors, p50, p99."""
    end = max((o.sent for o in outcomes), default=0.0)
    windows = []
    for start in np.arange(0, end + step, step):
        w = summarise(outcomes, float(start), float(start) + step)
        if w["requests"]:
            windows.append(
                {
                    "from_s": int(start),
                    "requests": w["requests"],
                    "served": w["served"],
                    "degraded": w["lists degraded"],
                    "errors": w["errors"],
                    "p50_ms": w["p50_ms"],
                    "p99_ms": w["p99_ms"],
                }
            )
    return windows


def check_events(
    driver: Any, run_id: str, outcomes: list[Outcome], folder: Path, wait_s: float
) -> dict[str, Any]:
    """Waits until the graph holds every acknowledged event (or `wait_s` passes with no
    progress), then counts lost, doubled and unacknowledged-but-delivered events."""
    acknowledged = {o.event_id for o in outcomes if o.kind == "event" and o.status == "202"}
    unacknowledged = {
        o.event_id for o in outcomes if o.kind == "event" and o.status != "202"
    } - acknowledged
    prefix = f"event-{run_id}-"
    query = load_cypher("bench", "faults_orders")
    began = time.monotonic()
    last_change, last_count = began, -1
    while True:
        records = driver.execute_query(query, prefix=prefix, database_="neo4j").records
        found = {r["order_id"].removeprefix("event-"): int(r["lines"]) for r in records}
        if acknowledged <= found.keys() or time.monotonic() - last_change > wait_s:
            break
        if len(found) != last_count:
            last_change, last_count = time.monotonic(), len(found)
        time.sleep(1)
    letters = sum(len(read_dead_letters(p)) for p in folder.rglob("dead-letters.jsonl"))
    return {
        "events sent": len(acknowledged) + len(unacknowledged),
        "events acknowledged (202)": len(acknowledged),
        "events in graph": len(found),
        "acknowledged events lost": len(acknowledged - found.keys()),
        "events doubled": sum(1 for lines in found.values() if lines > 1),
        "unacknowledged events delivered": len(unacknowledged & found.keys()),
        "dead letters": letters,
        "shipped within_s": round(time.monotonic() - began, 1),
    }


# -- scenarios -----------------------------------------------------------------------------------
@dataclass
class Setup:
    local: LocalNeo4j
    settings: Neo4jSettings
    api: Api
    key: str
    list_paths: list[str]
    products: list[str]
    events_dir: Path


def setup(args: argparse.Namespace, run_id: str) -> Setup:
    spec, neo4j_port, cache = SCALES[args.scale]
    local, settings = prepare(cache, neo4j_port, spec)
    # A restart under load on a busy machine can take longer than the usual start wait.
    local.settings = local.settings.model_copy(update={"start_timeout_s": 900.0})
    with open_driver(settings) as driver:
        row = driver.execute_query(
            load_cypher("bench", "faults_sample"), limit=2000, database_="neo4j"
        ).records[0]
        key = KeyStore(driver, database="neo4j").create(Role.storefront, f"faults {run_id}")[1]
    list_paths = [
        f"/v1/customers/{c}/recommendations?k=10&paths={args.paths}" for c in row["customers"]
    ]
    home = (cache / "serve" / "faults-home").resolve()
    events_dir = home / "events" / run_id
    env = serve_env(settings, PASSWORD, home, 3600, KGREC_EVENTS_DIR=str(events_dir))
    home.mkdir(parents=True, exist_ok=True)
    api = Api(args.api_port, args.workers, env, home / f"api-{run_id}.log")
    return Setup(local, settings, api, key, list_paths, row["products"], events_dir)


def _new_load(args: argparse.Namespace, s: Setup, run_id: str) -> Load:
    return Load(
        port=args.api_port,
        key=s.key,
        rate=args.rate,
        event_share=args.event_share,
        list_paths=s.list_paths,
        products=s.products,
        run_id=run_id,
        concurrency=args.concurrency,
        timeout_s=args.timeout_s,
    )


async def neo4j_restart(args: argparse.Namespace, s: Setup, load: Load) -> dict[str, Any]:
    marks: dict[str, float] = {}

    def since() -> float:
        return round(time.perf_counter() - load.began, 2)

    async def fault() -> None:
        await asyncio.sleep(args.warmup_s)
        marks["neo4j stopped at_s"] = since()
        if args.kill:
            pid = s.local.status().pid
            assert pid is not None, "Neo4j is not running"
            os.kill(pid, signal.SIGKILL)
            await asyncio.to_thread(psutil.Process(pid).wait, 30)
        else:
            await asyncio.to_thread(s.local.stop)
        marks["neo4j down at_s"] = since()
        await asyncio.sleep(args.down_s)
        marks["neo4j restart at_s"] = since()
        await asyncio.to_thread(s.local.start)
        marks["neo4j back at_s"] = since()

    # Until `after_s` past the restart (set by `until_after`); the bound only guards a hang.
    total = args.warmup_s + args.down_s + args.after_s + 900
    stop = asyncio.Event()

    async def until_after() -> None:
        await fault()
        await asyncio.sleep(args.after_s)
        stop.set()

    await asyncio.gather(load.run(total, stop), until_after())
    return marks


async def api_kill(args: argparse.Namespace, s: Setup, load: Load) -> dict[str, Any]:
    marks: dict[str, float] = {}

    def since() -> float:
        return round(time.perf_counter() - load.began, 2)

    stop = asyncio.Event()

    async def fault() -> None:
        await asyncio.sleep(args.warmup_s)
        marks["api killed at_s"] = since()
        await asyncio.to_thread(s.api.kill)
        await asyncio.sleep(args.down_s)
        marks["api restart at_s"] = since()
        s.api.start()
        await asyncio.to_thread(s.api.wait_ready)
        marks["api ready at_s"] = since()
        await asyncio.sleep(args.after_s)
        stop.set()

    total = args.warmup_s + args.down_s + args.after_s + 900
    await asyncio.gather(load.run(total, stop), fault())
    return marks


async def soak(args: argparse.Namespace, s: Setup, load: Load) -> dict[str, Any]:
    samples: list[dict[str, float]] = []
    done = threading.Event()

    async def sample() -> None:
        while not done.is_set():
            elapsed = time.perf_counter() - load.began if load.began else 0.0
            samples.append({"at_s": round(elapsed, 1), "rss_mib": round(s.api.rss_mib(), 1)})
            await asyncio.sleep(args.sample_s)

    sampler = asyncio.create_task(sample())
    # `warmup_s` first (cold page cache and query plans: the first seconds' p99 is seconds),
    # then `duration` measured.
    await load.run(args.warmup_s + args.duration)
    done.set()
    sampler.cancel()
    samples.append(
        {"at_s": round(time.perf_counter() - load.began, 1), "rss_mib": round(s.api.rss_mib(), 1)}
    )
    rss = [x["rss_mib"] for x in samples[1:]] or [0.0]  # the first sample is before any load
    measured = [o for o in load.outcomes if o.sent >= args.warmup_s]
    windows = timeline([replace(o, sent=o.sent - args.warmup_s) for o in measured], 60.0)
    return {
        "measured (after warm-up)": summarise(measured),
        "rss_mib first": rss[0],
        "rss_mib last": rss[-1],
        "rss_mib max": max(rss),
        "rss samples": samples,
        "per minute": windows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["neo4j-restart", "api-kill", "soak"], required=True)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--workers", type=int, default=2, help="API processes (kgrec serve).")
    parser.add_argument("--api-port", type=int, default=8723)
    parser.add_argument("--rate", type=float, help="Requests/s (default: 100; soak: 200).")
    parser.add_argument(
        "--paths", type=int, default=3, help="Paths per listed item (0: none, faster)."
    )
    parser.add_argument(
        "--event-share",
        type=float,
        help="Share of requests that post an event (default 0.3; soak 0).",
    )
    parser.add_argument("--concurrency", type=int, default=64, help="Connections at most.")
    parser.add_argument(
        "--timeout-s", type=float, default=30, help="A request unanswered this long is an error."
    )
    parser.add_argument(
        "--warmup-s", type=float, default=15, help="Load before the fault (soak: not measured)."
    )
    parser.add_argument(
        "--down-s", type=float, help="How long it stays down (neo4j-restart 20, api-kill 5)."
    )
    parser.add_argument("--after-s", type=float, default=30, help="Load after recovery.")
    parser.add_argument("--kill", action="store_true", help="neo4j-restart: SIGKILL Neo4j.")
    parser.add_argument("--duration", type=float, default=600, help="soak: seconds of load.")
    parser.add_argument("--sample-s", type=float, default=10, help="soak: RSS sample period.")
    parser.add_argument("--ship-wait-s", type=float, default=120, help="Wait for events this long.")
    parser.add_argument("--keep", action="store_true", help="Keep the run's events in the graph.")
    parser.add_argument("--keep-running", action="store_true", help="Leave Neo4j running.")
    parser.add_argument("--output", type=Path, help="JSON report (default .kgrec/bench/...).")
    args = parser.parse_args()
    soaking = args.scenario == "soak"
    args.rate = args.rate or (200.0 if soaking else 100.0)
    args.event_share = args.event_share if args.event_share is not None else (0 if soaking else 0.3)
    args.down_s = (
        args.down_s
        if args.down_s is not None
        else (20.0 if args.scenario == "neo4j-restart" else 5.0)
    )
    run_id = uuid.uuid4().hex[:8]
    s = setup(args, run_id)
    report: dict[str, Any] = {
        "scenario": args.scenario,
        "scale": args.scale,
        "workers": args.workers,
        "rate": args.rate,
        "paths": args.paths,
        "event share": args.event_share,
        "run": run_id,
    }
    try:
        s.api.start()
        report["api ready_s"] = round(s.api.wait_ready(), 1)
        load = _new_load(args, s, run_id)
        scenario = {"neo4j-restart": neo4j_restart, "api-kill": api_kill, "soak": soak}
        report.update(asyncio.run(scenario[args.scenario](args, s, load)))
        report["load"] = summarise(load.outcomes)
        report["load"]["seconds"] = round(max((o.scheduled for o in load.outcomes), default=0), 1)
        report["load"]["unsent (queued at the end)"] = load.unsent
        if not soaking:
            report["before fault"] = summarise(load.outcomes, 0, args.warmup_s)
            fault_end = report.get("neo4j back at_s", report.get("api ready at_s", 0.0))
            report["during fault"] = summarise(load.outcomes, args.warmup_s, fault_end)
            report["after recovery"] = summarise(load.outcomes, fault_end)
            report["timeline"] = timeline(load.outcomes, 10.0)
        if args.event_share > 0:
            with open_driver(s.settings) as driver:
                report["events"] = check_events(
                    driver, run_id, load.outcomes, s.events_dir, args.ship_wait_s
                )
        report["api rss_mib at end"] = round(s.api.rss_mib(), 1)
    finally:
        s.api.stop()
        if not args.keep:
            with open_driver(s.settings) as driver:
                driver.execute_query(
                    load_cypher("bench", "faults_cleanup"),
                    customer_prefix=f"faults-{run_id}-",
                    database_="neo4j",
                )
        if not args.keep_running:
            s.local.stop()
    print_report(report)
    output = args.output or Path(f".kgrec/bench/faults-{args.scenario}-{args.scale}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {output}")


def print_report(report: dict[str, Any]) -> None:
    """Markdown, ready for docs/benchmarks.md; the full report is the JSON file."""
    head = {k: v for k, v in report.items() if not isinstance(v, dict | list)}
    print("\n" + ", ".join(f"{k}: {v}" for k, v in head.items()) + "\n")
    phases = [
        p
        for p in (
            "before fault",
            "during fault",
            "after recovery",
            "load",
            "measured (after warm-up)",
        )
        if p in report
    ]
    columns = [
        "requests",
        "served",
        "lists degraded",
        "events acknowledged",
        "errors",
        "p50_ms",
        "p99_ms",
    ]
    print("| phase | " + " | ".join(columns) + " | errors by kind |")
    print("|---" * (len(columns) + 2) + "|")
    for phase in phases:
        row = report[phase]
        kinds = ", ".join(f"{k}: {v}" for k, v in row["errors by kind"].items()) or "-"
        print(f"| {phase} | " + " | ".join(str(row[c]) for c in columns) + f" | {kinds} |")
    if "events" in report:
        print("\n| " + " | ".join(report["events"]) + " |")
        print("|---" * len(report["events"]) + "|")
        print("| " + " | ".join(str(v) for v in report["events"].values()) + " |")
    for name in ("timeline", "per minute"):
        if name in report:
            print(f"\n{name} (by the time sent):")
            print("| from s | requests | served | degraded | errors | p50 ms | p99 ms |")
            print("|---|---|---|---|---|---|---|")
            for w in report[name]:
                print(
                    f"| {w['from_s']} | {w['requests']} | {w['served']} | {w['degraded']} | "
                    f"{w['errors']} | {w['p50_ms']} | {w['p99_ms']} |"
                )
    if "per minute" in report:
        print(
            f"\nAPI RSS (all workers), MiB: first {report['rss_mib first']}, last "
            f"{report['rss_mib last']}, max {report['rss_mib max']}"
        )


if __name__ == "__main__":
    main()
