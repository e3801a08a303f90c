"""Served lists written back to the graph for analysts: each shown item becomes
`(:Customer)-[:WAS_RECOMMENDED {ts, rank, model_version, strategy, surface, path_types, list_id,
experiment_id, variant}]->(:Product)` (the last two only for experiment traffic, which is always
written: it is the experiments' exposure log).

Serving must not wait for this: lists are sampled (`KGREC_SERVED_SAMPLE_RATE`), capped at
`KGREC_SERVED_MAX_PER_S` lists a second per process (the graph's write load stays bounded
whatever the traffic: at 1,000 lists/s an uncapped 10% sample is 1,000 relationships a second,
which took Neo4j's share of two cores and multiplied the serving p99 by 2-7: measured with
caps of 5 and 20 a second on the 1M-line shop), queued in memory and
written in batches by a background thread. It is an analytics log, not an
acknowledged write: when the queue is full (Neo4j down for long) the oldest lists are dropped
and counted, never the request.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import neo4j
from neo4j.exceptions import DriverError, Neo4jError

from graph.cypher import load_cypher
from recommender.rate import RateCap

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedItem:
    product_id: str
    rank: int
    strategy: str
    path_types: tuple[str, ...] = ()  # kinds of the explanation paths shown with it


@dataclass(frozen=True)
class ServedStats:
    recorded: int  # lists sampled into the queue
    written: int  # lists written to the graph
    capped: int  # sampled lists left out by the per-second cap
    dropped: int  # lists dropped because the queue was full
    queued: int
    last_error: str | None


class ServedLog:
    """Samples served lists and writes them to Neo4j in batches."""

    def __init__(
        self,
        driver: neo4j.Driver,
        *,
        database: str,
        sample_rate: float,
        batch_size: int = 500,
        interval_s: float = 1.0,
        max_queued: int = 20_000,
        seed: int | None = None,
        max_per_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= sample_rate <= 1:
            raise ValueError(f"sample_rate must be between 0 and 1, got {sample_rate}")
        if not max_per_s >= 0:
            raise ValueError(f"max_per_s must be >= 0 (0: no cap), got {max_per_s}")
        # Up to `max_per_s` sampled lists a second, bursts of as many.
        self._cap = RateCap(max_per_s, clock)
        self.max_per_s = max_per_s
        self.driver = driver
        self.database = database
        self.sample_rate = sample_rate
        self.batch_size = batch_size
        self.interval_s = interval_s
        self._queue: deque[dict[str, Any]] = deque(maxlen=max_queued)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._recorded = self._written = self._dropped = 0
        self._last_error: str | None = None

    def record(
        self,
        customer_id: str,
        surface: str,
        model_version: str | None,
        items: Sequence[ServedItem],
        ts: datetime | None = None,
        *,
        list_id: str | None = None,
        experiment_id: str | None = None,
        variant: str | None = None,
    ) -> bool:
        """Queues one served list if it is sampled (and within the per-second cap); True when
        it was. Lists of experiment traffic are always queued, whatever the sample rate and the
        cap: they are the experiment's exposure log, and a sample would leave customers out of
        its report."""
        if not items or (self.sample_rate <= 0 and experiment_id is None):
            return False
        with self._lock:
            if experiment_id is None:
                if self._random.random() >= self.sample_rate:
                    return False
                if not self._cap.take():
                    return False
            if len(self._queue) == self._queue.maxlen:
                self._dropped += 1  # deque drops the oldest
            self._queue.append(
                {
                    "customer_id": customer_id,
                    "surface": surface,
                    "model_version": model_version,
                    "ts": (ts or datetime.now(UTC)).isoformat(),
                    "list_id": list_id,
                    "experiment_id": experiment_id,
                    "variant": variant,
                    "items": [
                        {
                            "product_id": i.product_id,
                            "rank": i.rank,
                            "strategy": i.strategy,
                            "path_types": list(i.path_types),
                        }
                        for i in items
                    ],
                }
            )
            self._recorded += 1
        return True

    def flush(self) -> int:
        """Writes everything queued now (the thread calls it; tests too). Returns lists written.
        On a graph error the batch goes back to the front of the queue for the next turn."""
        written = 0
        while True:
            with self._lock:
                batch = [
                    self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))
                ]
            if not batch:
                return written
            try:
                with self.driver.session(database=self.database) as session:
                    session.execute_write(_write, batch)
            except (DriverError, Neo4jError, OSError) as exc:
                with self._lock:
                    self._queue.extendleft(reversed(batch))
                    self._last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("served lists not written yet: %s", self._last_error)
                return written
            with self._lock:
                self._written += len(batch)
                self._last_error = None
            written += len(batch)

    def forget(self, customer_id: str) -> int:
        """Drops a customer's queued lists (erasure); returns how many. A batch being written
        at this moment may still land: the erasure deletes the graph's copy afterwards."""
        with self._lock:
            kept = [row for row in self._queue if row["customer_id"] != customer_id]
            removed = len(self._queue) - len(kept)
            if removed:
                self._queue.clear()
                self._queue.extend(kept)
        return removed

    def stats(self) -> ServedStats:
        with self._lock:
            return ServedStats(
                recorded=self._recorded,
                written=self._written,
                capped=self._cap.refused,
                dropped=self._dropped,
                queued=len(self._queue),
                last_error=self._last_error,
            )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kgrec-served-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.flush()


def _write(tx: neo4j.ManagedTransaction, rows: list[dict[str, Any]]) -> None:
    tx.run(load_cypher("recommender", "served_write"), rows=rows).consume()
