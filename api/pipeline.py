"""`kgrec pipeline run`: ingest, train, evaluate, gate, activate and forecast as one job.

The steps call the same library functions as the single commands (`kgrec ingest`, `kgrec
train`, `kgrec models activate`, `kgrec forecast`). Three guarantees an operator relies on:

- **One run at a time** per `KGREC_HOME`: an exclusive `flock` on `<home>/pipeline.lock`, which
  names its holder (pid, host, start time, run id). The kernel drops the lock when its process
  dies, so a lock left by a crashed or killed run is taken over (and said so), never waited on.
- **Resumable**: a `PipelineRun` node records every step's status, start, end, duration and
  outputs, written at each step boundary. A rerun for the same input folder and model resumes
  the unfinished run when the folder's content is unchanged: finished steps are skipped and their
  outputs reused (no second load, no retraining while the registered version exists).
- **A refused gate is an outcome, not a failure**: the run ends `succeeded` with
  `activated: false` and the reason; the forecast still runs (it depends on the data, not on the
  model).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import neo4j

from api.console import console
from graph.cypher import load_cypher
from graph.errors import KgrecError
from graph.ingest.reader import content_hash, find_files
from graph.ingest.service import IngestOptions, Ingestor, ProgressSink
from graph.schema import apply_schema
from graph.settings import Settings

#: The steps, in order. Each one's outputs are what later steps (and a resumed run) read.
STEPS: tuple[str, ...] = ("ingest", "train", "evaluate", "gate", "activate", "forecast")

StepStatus = Literal["pending", "running", "done", "skipped", "failed"]
ResumeMode = Literal["auto", "resume", "fresh"]


class PipelineBusy(KgrecError):
    """Another pipeline run holds the lock."""


@dataclass
class StepRecord:
    status: StepStatus = "pending"
    started_at: str | None = None
    ended_at: str | None = None
    seconds: float | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reused: bool = False  # finished by an earlier attempt of this run; skipped on resume


@dataclass
class PipelineRun:
    """The record of one run; `steps` holds one `StepRecord` per name of `STEPS`."""

    run_id: str
    input: str
    content_hash: str
    model: str
    options: dict[str, Any]
    status: str = "running"  # running, succeeded, failed; "interrupted" once found dead
    activated: bool | None = None
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    ended_at: str | None = None
    attempts: int = 1
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    steps: dict[str, StepRecord] = field(default_factory=lambda: {s: StepRecord() for s in STEPS})

    @property
    def seconds(self) -> float:
        return sum(step.seconds or 0.0 for step in self.steps.values())

    def properties(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "input": self.input,
            "content_hash": self.content_hash,
            "model": self.model,
            "options": json.dumps(self.options, sort_keys=True),
            "status": self.status,
            "activated": self.activated,
            "started_at": datetime.fromisoformat(self.started_at),
            "ended_at": datetime.fromisoformat(self.ended_at) if self.ended_at else None,
            "attempts": self.attempts,
            "pid": self.pid,
            "host": self.host,
            "seconds": round(self.seconds, 3),
            "steps": json.dumps({name: asdict(step) for name, step in self.steps.items()}),
        }

    @classmethod
    def from_node(cls, node: dict[str, Any]) -> PipelineRun:
        def iso(value: Any) -> str | None:
            if value is None:
                return None
            native = value.to_native() if hasattr(value, "to_native") else value
            return str(native.isoformat())

        steps = json.loads(node["steps"])
        return cls(
            run_id=node["run_id"],
            input=node["input"],
            content_hash=node["content_hash"],
            model=node["model"],
            options=json.loads(node["options"]),
            status=node["status"],
            activated=node.get("activated"),
            started_at=iso(node["started_at"]) or "",
            ended_at=iso(node.get("ended_at")),
            attempts=int(node.get("attempts") or 1),
            pid=int(node["pid"]),
            host=node["host"],
            steps={name: StepRecord(**steps.get(name, {})) for name in STEPS},
        )


# -- the lock -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    started_at: str
    run_id: str | None

    def describe(self) -> str:
        run = f", run {self.run_id}" if self.run_id else ""
        return f"pid {self.pid} on {self.host}, started {self.started_at}{run}"


class PipelineLock:
    """An exclusive, non-blocking `flock` on a file that names its holder.

    flock rather than "create the file if absent": the kernel releases it when the holder dies
    (crash, SIGKILL, reboot), so a dead run never blocks the next one, and two runs that both
    find a stale file cannot both take it over.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None
        #: The holder a crashed run left in the file, when this lock took it over.
        self.stale: LockHolder | None = None

    def read_holder(self) -> LockHolder | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            return LockHolder(
                int(data["pid"]), str(data["host"]), str(data["started_at"]), data.get("run_id")
            )
        except (ValueError, KeyError, TypeError):
            return None  # empty (released) or unreadable: nobody

    def acquire(self, run_id: str | None = None) -> None:
        """Takes the lock or raises `PipelineBusy` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            holder = self.read_holder()
            named = holder.describe() if holder else "a process that has not written its name yet"
            raise PipelineBusy(
                f"another pipeline run holds {self.path} ({named}); wait for it to finish "
                "(`kgrec pipeline status`), or stop that process"
            ) from None
        # The file still names a holder: that process died without releasing (the kernel freed
        # its flock), so its lock is stale and now ours.
        self.stale = self.read_holder()
        self._handle = handle
        self.name(run_id)

    def name(self, run_id: str | None) -> None:
        """Writes this process as the holder (again, once the run id is known)."""
        if self._handle is None:
            raise KgrecError("the pipeline lock is not held")
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "run_id": run_id,
        }
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps(holder))
        self._handle.flush()

    def release(self) -> None:
        if self._handle is None:
            return
        # Emptied, not deleted: deleting would let a waiter lock an orphaned inode while a third
        # process creates a new file and locks that one too.
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.flush()
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    @contextmanager
    def held(self, run_id: str | None = None) -> Iterator[PipelineLock]:
        self.acquire(run_id)
        try:
            yield self
        finally:
            self.release()


def lock_path(settings: Settings) -> Path:
    return settings.app.home.resolve() / "pipeline.lock"


# -- the run record -----------------------------------------------------------------------------


class RunStore:
    """`PipelineRun` nodes: saved at every step boundary, read to resume and to report."""

    def __init__(self, driver: neo4j.Driver, database: str) -> None:
        self.driver = driver
        self.database = database

    def save(self, run: PipelineRun) -> None:
        self.driver.execute_query(
            load_cypher("api", "pipeline_save"), {"run": run.properties()}, database_=self.database
        )

    def latest(self, input_folder: str, model: str) -> PipelineRun | None:
        records = self.driver.execute_query(
            load_cypher("api", "pipeline_latest"),
            {"input": input_folder, "model": model},
            database_=self.database,
            routing_=neo4j.RoutingControl.READ,
        ).records
        return PipelineRun.from_node(dict(records[0]["run"])) if records else None

    def recent(self, limit: int = 10) -> list[PipelineRun]:
        records = self.driver.execute_query(
            load_cypher("api", "pipeline_recent"),
            {"limit": limit},
            database_=self.database,
            routing_=neo4j.RoutingControl.READ,
        ).records
        return [PipelineRun.from_node(dict(r["run"])) for r in records]


# -- the steps ----------------------------------------------------------------------------------


@dataclass
class PipelineOptions:
    model: str
    max_epochs: int | None = None
    val_days: int | None = None
    seed: int = 0
    horizon: int = 28

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Pipeline:
    """Runs (or resumes) one pipeline run; the caller holds the lock."""

    def __init__(
        self,
        settings: Settings,
        driver: neo4j.Driver,
        *,
        progress: ProgressSink | None = None,
        after_step: Callable[[str, StepRecord], None] | None = None,
    ) -> None:
        self.settings = settings
        self.driver = driver
        self.database = settings.neo4j.database
        self.store = RunStore(driver, self.database)
        self.progress = progress or ProgressSink()
        # Called once a step's record is saved; a crash raised here is what tests inject.
        self.after_step = after_step

    def _registry(self) -> Any:
        from gnn.registry import Registry  # PyTorch-free, but only needed here

        return Registry(
            self.driver, database=self.database, root=self.settings.app.home.resolve() / "models"
        )

    # -- choosing the run --------------------------------------------------------------------

    def prepare(self, folder: Path, options: PipelineOptions, mode: ResumeMode) -> PipelineRun:
        """The run to execute: the unfinished one to resume, or a new one.

        `auto` resumes the newest run for this folder and model when it did not finish and the
        folder's content is unchanged; `resume` insists on one; `fresh` always starts anew.

        Raises:
            KgrecError: `resume` without an unfinished run for this input, or the input changed.
        """
        folder = folder.resolve()
        digest = content_hash(find_files(folder))
        latest = self.store.latest(str(folder), options.model)
        unfinished = latest is not None and latest.status not in ("succeeded",)
        if mode == "resume" and (latest is None or not unfinished):
            raise KgrecError(
                f"no unfinished pipeline run for {folder} and model {options.model} to "
                "resume; run without --resume to start one"
            )
        if mode != "fresh" and latest is not None and unfinished:
            if latest.content_hash != digest:
                if mode == "resume":
                    raise KgrecError(
                        f"{folder} changed since run {latest.run_id} started; its ingested data "
                        "is not this folder's. Start a new run with --fresh"
                    )
                console.print(
                    f"Run {latest.run_id} did not finish but {folder} has changed since: "
                    "starting a new run."
                )
            else:
                if latest.status == "running":
                    # We hold the lock, so whoever wrote "running" is dead.
                    console.print(
                        f"Run {latest.run_id} was interrupted (pid {latest.pid} on "
                        f"{latest.host} is gone)."
                    )
                latest.status = "running"
                latest.attempts += 1
                latest.pid, latest.host = os.getpid(), socket.gethostname()
                latest.ended_at = None
                console.print(
                    f"Resuming pipeline run {latest.run_id} (attempt {latest.attempts}); "
                    "finished steps are reused."
                )
                return latest
        run = PipelineRun(
            run_id=f"pipeline-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
            input=str(folder),
            content_hash=digest,
            model=options.model,
            options=options.as_json(),
        )
        console.print(f"Pipeline run {run.run_id}: {folder}, model {options.model}.")
        return run

    # -- running -----------------------------------------------------------------------------

    def run(self, run: PipelineRun) -> PipelineRun:
        """Executes the steps not yet finished; saves the record at every boundary.

        Raises:
            Exception: whatever a step raised, after the run is recorded as failed.
        """
        apply_schema(
            self.driver,
            database=self.database,
            embedding_dimensions=self.settings.app.embedding_dimensions,
        )
        self.store.save(run)
        began = time.monotonic()
        redo = False  # once a step runs again, every later step runs again on its outputs
        for name in STEPS:
            record = run.steps[name]
            if not redo and record.status in ("done", "skipped") and self._still_valid(name, run):
                record.reused = True
                console.print(f"[dim]- {name:<9} reused from an earlier attempt[/dim]")
                continue
            redo = True
            record.status, record.error, record.reused = "running", None, False
            record.started_at = datetime.now(UTC).isoformat()
            record.ended_at, record.seconds, record.outputs = None, None, {}
            self.store.save(run)
            console.print(f"> {name} ...")
            step_began = time.monotonic()
            try:
                status, outputs = getattr(self, f"_step_{name}")(run)
            except BaseException as exc:
                record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
                self._close_step(record, step_began)
                run.status, run.ended_at = "failed", datetime.now(UTC).isoformat()
                self.store.save(run)
                console.print(f"[red]x {name:<9} failed after {record.seconds:.1f} s[/red]")
                raise
            record.status, record.outputs = status, outputs
            self._close_step(record, step_began)
            self.store.save(run)
            console.print(f"[green]+ {name:<9} {status} in {record.seconds:.1f} s[/green]")
            if self.after_step is not None:
                self.after_step(name, record)
        run.status = "succeeded"
        run.activated = bool(run.steps["activate"].outputs.get("activated"))
        run.ended_at = datetime.now(UTC).isoformat()
        self.store.save(run)
        console.print(f"Pipeline run {run.run_id} finished in {time.monotonic() - began:.1f} s.")
        return run

    @staticmethod
    def _close_step(record: StepRecord, began: float) -> None:
        record.seconds = round(time.monotonic() - began, 3)
        record.ended_at = datetime.now(UTC).isoformat()

    def _still_valid(self, name: str, run: PipelineRun) -> bool:
        """Whether a finished step's outputs still stand (a version can be deleted)."""
        if name == "train":
            from gnn.registry import RegistryError

            try:
                self._registry().get(run.steps["train"].outputs["version_id"])
            except (RegistryError, KeyError):
                console.print("- train     its model version is gone: training again")
                return False
        return True

    def _step_ingest(self, run: PipelineRun) -> tuple[StepStatus, dict[str, Any]]:
        ingestor = Ingestor(
            self.driver, database=self.database, options=IngestOptions(), progress=self.progress
        )
        report = ingestor.run(Path(run.input))
        rows = sum(f.rows for f in report.files.values())
        console.print(f"  {report.run_id}: {rows:,} rows ({report.status}).")
        return "done", {
            "ingest_run_id": report.run_id,
            "rows": rows,
            "content_hash": report.content_hash,
        }

    def _step_train(self, run: PipelineRun) -> tuple[StepStatus, dict[str, Any]]:
        from api.cli_models import train_and_register
        from gnn.train import RunOptions

        options = RunOptions(
            val_days=run.options.get("val_days") or self.settings.app.validation_days,
            test_days=0,
            seed=int(run.options.get("seed", 0)),
            max_epochs=run.options.get("max_epochs"),
            dimensions=self.settings.app.embedding_dimensions,
            allow_repurchase=self.settings.app.allow_repurchase,
        )
        version_id = train_and_register(
            self.settings, self.driver, run.model, options, activate=False
        )
        return "done", {"version_id": version_id}

    def _step_evaluate(self, run: PipelineRun) -> tuple[StepStatus, dict[str, Any]]:
        """The candidate's held-out (latest days) validation NDCG@10 against the active one's.

        Training measured it on days it did not learn from; recomputing it here would retrain.
        `kgrec evaluate` is the separate, heavier comparison of every model on a test period.
        """
        registry = self._registry()
        candidate = registry.get(run.steps["train"].outputs["version_id"])
        active = registry.active()
        outputs = {
            "version_id": candidate.version_id,
            "val_ndcg10": candidate.val_ndcg10,
            "active_version": active.version_id if active else None,
            "active_val_ndcg10": active.val_ndcg10 if active else None,
        }
        shown = "-" if candidate.val_ndcg10 is None else f"{candidate.val_ndcg10:.4f}"
        versus = (
            f" (active {active.version_id}: {active.val_ndcg10 or 0:.4f})"
            if active
            else " (no active version)"
        )
        console.print(f"  {candidate.version_id}: validation NDCG@10 {shown}{versus}.")
        return "done", outputs

    def _step_gate(self, run: PipelineRun) -> tuple[StepStatus, dict[str, Any]]:
        from gnn.registry import _gate  # the registry's own rule, so the two never disagree

        registry = self._registry()
        candidate = registry.get(run.steps["train"].outputs["version_id"])
        active = registry.active()
        if active is not None and active.version_id == candidate.version_id:
            reason = None  # activated by an earlier attempt whose record was not saved
        elif not candidate.has_embeddings:
            reason = f"{candidate.model} has no embeddings to serve"
        else:
            reason = _gate(candidate, active, self.settings.app.activation_margin)
        decision = "passed" if reason is None else "refused"
        console.print(f"  gate {decision}" + (f": {reason}" if reason else "."))
        return "done", {"decision": decision, "reason": reason}

    def _step_activate(self, run: PipelineRun) -> tuple[StepStatus, dict[str, Any]]:
        gate = run.steps["gate"].outputs
        version_id = run.steps["train"].outputs["version_id"]
        registry = self._registry()
        if gate.get("decision") != "passed":
            active = registry.active()
            kept = active.version_id if active else "none"
            console.print(f"  not activated ({gate.get('reason')}); the active model stays {kept}.")
            return "skipped", {"activated": False, "reason": gate.get("reason"), "active": kept}
        active = registry.active()
        if active is not None and active.version_id == version_id:
            return "done", {"activated": True, "previous": None, "already_active": True}
        result = registry.activate(version_id, margin=self.settings.app.activation_margin)
        previous = result.previous.version_id if result.previous else None
        console.print(
            f"  activated {version_id} (was {previous or 'none'}); embeddings on "
            f"{result.nodes_written:,} nodes."
        )
        return "done", {"activated": True, "previous": previous, "nodes": result.nodes_written}

    def _step_forecast(self, run: PipelineRun) -> tuple[StepStatus, dict[str, Any]]:
        from forecasting.service import run_forecast

        result = run_forecast(
            self.driver, database=self.database, horizon=int(run.options.get("horizon", 28))
        )
        console.print(
            f"  {result.version}: {result.series:,} products, {result.at_risk:,} at risk."
        )
        return "done", {
            "forecast_version": result.version,
            "series": result.series,
            "at_risk": result.at_risk,
        }


def run_pipeline(
    settings: Settings,
    driver: neo4j.Driver,
    folder: Path,
    options: PipelineOptions,
    *,
    mode: ResumeMode = "auto",
    progress: ProgressSink | None = None,
    after_step: Callable[[str, StepRecord], None] | None = None,
) -> PipelineRun:
    """Takes the lock, picks the run (new or resumed) and runs it; the lock is freed after.

    Raises:
        PipelineBusy: another run holds the lock.
    """
    lock = PipelineLock(lock_path(settings))
    with lock.held():
        if lock.stale is not None:
            console.print(
                f"Took over a stale pipeline lock: {lock.stale.describe()} is no longer running."
            )
        pipeline = Pipeline(settings, driver, progress=progress, after_step=after_step)
        run = pipeline.prepare(folder, options, mode)
        lock.name(run.run_id)
        return pipeline.run(run)
