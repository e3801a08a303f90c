"""Segment campaigns: a background job that builds every customer's list of a segment (for an
e-mail), with progress, and writes CSV and JSON exports under KGREC_HOME/campaigns."""

from __future__ import annotations

import csv
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from recommender.engine import Engine

Status = Literal["queued", "running", "done", "failed"]


class CampaignNotFound(LookupError):
    pass


@dataclass
class Job:
    job_id: str
    segment: str
    k: int
    surface: str
    customers: list[str]
    status: Status = "queued"
    done: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    error: str | None = None

    @property
    def progress(self) -> float:
        return 1.0 if not self.customers else self.done / len(self.customers)


class Campaigns:
    """Runs jobs one at a time on a worker thread; exports are files, so they outlive the job."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: list[tuple[Job, Engine]] = []
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="kgrec-campaigns", daemon=True)
        self._thread.start()

    def submit(self, engine: Engine, segment: str, k: int, surface: str) -> Job:
        """Raises:
        CampaignNotFound: nobody is in the segment.
        """
        snap = engine.snapshot
        customers = sorted(c for c, s in snap.customer_segment.items() if s == segment)
        if not customers:
            known = sorted(set(snap.customer_segment.values()))
            raise CampaignNotFound(
                f"segment {segment!r} has no customers; known segments: {', '.join(known[:20])}"
            )
        job = Job("J" + uuid.uuid4().hex[:12], segment, k, surface, customers)
        with self._wake:
            self._jobs[job.job_id] = job
            self._queue.append((job, engine))
            self._wake.notify()
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise CampaignNotFound(f"no campaign job {job_id!r} (jobs are kept until a restart)")
        return job

    def forget(self, customer_id: str) -> int:
        """Takes an erased customer out of the jobs kept in memory (their exports on disk are
        rewritten by the erasure); returns how many jobs named them."""
        removed = 0
        with self._lock:
            for job in self._jobs.values():
                if customer_id in job.customers:
                    job.customers = [c for c in job.customers if c != customer_id]
                    removed += 1
        return removed

    def export_path(self, job_id: str, fmt: Literal["csv", "json"]) -> Path:
        return self.folder / f"{job_id}.{fmt}"

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job, engine = self._queue.pop(0)
            try:
                self._execute(job, engine)
            except Exception as exc:  # a failed job reports why; the worker goes on
                job.status = "failed"
                job.error = f"{type(exc).__name__}: {exc}"
                job.finished_at = datetime.now(UTC)

    def _execute(self, job: Job, engine: Engine) -> None:
        job.status = "running"
        self.folder.mkdir(parents=True, exist_ok=True)
        rows: list[dict[str, object]] = []
        for customer in job.customers:
            for rank, item in enumerate(
                engine.recommend(customer, job.k, surface=job.surface), start=1
            ):
                rows.append(
                    {
                        "customer_id": customer,
                        "rank": rank,
                        "product_id": item.product_id,
                        "name": item.name,
                        "score": item.score,
                        "strategy": item.strategy,
                        "adjustments": "; ".join(a.reason for a in item.adjustments),
                    }
                )
            job.done += 1
        # Written to temporary names and renamed: a download never sees half a file.
        csv_path, json_path = (
            self.export_path(job.job_id, "csv"),
            self.export_path(job.job_id, "json"),
        )
        tmp = csv_path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(
                out,
                ["customer_id", "rank", "product_id", "name", "score", "strategy", "adjustments"],
            )
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(csv_path)
        tmp = json_path.with_suffix(".json.tmp")
        tmp.write_text(
            json.dumps(
                {
                    "job_id": job.job_id,
                    "segment": job.segment,
                    "surface": job.surface,
                    "model_version": engine.snapshot.version_id,
                    "rows": rows,
                }
            ),
            encoding="utf-8",
        )
        tmp.replace(json_path)
        job.status = "done"
        job.finished_at = datetime.now(UTC)
