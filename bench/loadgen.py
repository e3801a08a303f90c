"""A small HTTP load generator (its own process): N keep-alive connections on asyncio streams
sending GETs from a list of paths for a fixed time; prints one JSON line with the latency
percentiles, throughput and errors.

Closed loop (default): each connection sends its next request as soon as the last answer
arrived, so the throughput is the server's capacity and the latency follows from it (with N
connections, mean latency = N / throughput). Open loop (`--rate R`): requests are due at a
fixed rate R, whatever the server does, and the N connections take them in turn; a request's
latency counts from when it was due, so time spent waiting for a free connection is included
(no coordinated omission).

Raw HTTP/1.1 on asyncio streams instead of an HTTP client library: on a 2-core machine the
generator shares the CPU with the server, so it must cost as little per request as possible.

  python -m bench.loadgen --port 8000 --key KEY --paths paths.txt --concurrency 16 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path

import numpy as np


async def _client(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    host: str,
    key: str,
    paths: list[str],
    stop_at: float,
    latencies: list[float],
    dues: list[float],
    errors: dict[str, int],
    seed: int,
    schedule: _Schedule | None = None,
) -> None:
    rng = random.Random(seed)
    reader, writer = connection
    try:
        while time.perf_counter() < stop_at:
            path = paths[rng.randrange(len(paths))]
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
                "Connection: keep-alive\r\n\r\n"
            ).encode()
            started = time.perf_counter()
            if schedule is not None:
                started = schedule.next_due()
                if started >= stop_at:
                    break
                if started > time.perf_counter():
                    await asyncio.sleep(started - time.perf_counter())
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            chunked = False
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
                while True:
                    size = int((await reader.readline()).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            dues.append(started)
            status = status_line.split(b" ", 2)[1].decode() if status_line else "closed"
            if status != "200":
                errors[status] = errors.get(status, 0) + 1
                if status == "closed":
                    return
    finally:
        writer.close()


class _Schedule:
    """Due times at a fixed rate, handed out in order to whichever connection is free."""

    def __init__(self, began: float, rate: float) -> None:
        self.began, self.rate, self.n = began, rate, 0

    def next_due(self) -> float:
        due = self.began + self.n / self.rate
        self.n += 1
        return due


async def run(
    host: str,
    port: int,
    key: str,
    paths: list[str],
    concurrency: int,
    seconds: float,
    rate: float | None = None,
) -> dict[str, object]:
    latencies: list[float] = []
    dues: list[float] = []  # when each request was due (sent, in a closed loop)
    errors: dict[str, int] = {}
    # Connections first, as a client's pool would have them: the clock starts once they are
    # open, so no request's latency includes a TCP handshake or a worker's first accept.
    connections = await asyncio.gather(
        *(asyncio.open_connection(host, port) for _ in range(concurrency))
    )
    began = time.perf_counter()
    stop_at = began + seconds
    schedule = None if rate is None else _Schedule(began, rate)
    await asyncio.gather(
        *(
            _client(conn, host, key, paths, stop_at, latencies, dues, errors, seed, schedule)
            for seed, conn in enumerate(connections)
        )
    )
    elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
        "p90_ms": round(float(np.percentile(ms, 90)), 2) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        "concurrency": concurrency,
        "offered_rps": rate,
        # p99 of the requests due in each second: shows whether a bad p99 is one stall or all.
        "p99_ms_per_second": _per_second(np.array(dues) - began, ms),
    }


def _per_second(offsets: np.ndarray, ms: np.ndarray) -> list[float]:
    seconds = offsets.astype(int)
    return [
        round(float(np.percentile(ms[seconds == s], 99)), 1)
        for s in range(int(seconds.max()) + 1 if len(seconds) else 0)
        if np.any(seconds == s)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--paths", type=Path, required=True, help="One request path per line.")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--rate", type=float, help="Open loop: requests due per second (default: closed loop)."
    )
    args = parser.parse_args()
    paths = [p for p in args.paths.read_text().splitlines() if p]
    # libuv's loop when installed (it is, with the API): the generator shares the two cores
    # with the server, so the less CPU it spends per request the better.
    try:
        import uvloop
    except ImportError:
        uvloop = None
    coroutine = run(
        args.host, args.port, args.key, paths, args.concurrency, args.seconds, args.rate
    )
    result = uvloop.run(coroutine) if uvloop is not None else asyncio.run(coroutine)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
