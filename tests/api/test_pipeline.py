"""`kgrec pipeline`: a full run against the real Neo4j, one run at a time, a crash resumed
without reloading or retraining, a stale lock taken over, and a refused gate as an outcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import neo4j
import pytest

from api.pipeline import STEPS, PipelineLock, PipelineOptions, StepRecord, lock_path, run_pipeline
from graph.settings import Settings
from graph.synthetic import ShopSpec, generate_shop
from tests.api.test_cli import run_kgrec, session_server_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHOP = ShopSpec(customers=300, products=60, days=90, seed=5, lines_per_customer=10)
# The quickest model that can be activated (it has embeddings): BPR, one epoch.
MODEL_ARGS = ["--model", "bpr", "--max-epochs", "1", "--val-days", "14", "--horizon", "7"]
OPTIONS = PipelineOptions(model="bpr", max_epochs=1, val_days=14, horizon=7)


class Crash(RuntimeError):
    """Stands for the process dying between two steps."""


def with_home(settings: Settings, home: Path) -> Settings:
    return settings.model_copy(update={"app": settings.app.model_copy(update={"home": home})})


def count(driver: neo4j.Driver, settings: Settings, query: str, **params: object) -> int:
    records = driver.execute_query(query, params, database_=settings.neo4j.database).records
    return int(records[0][0])


def runs(driver: neo4j.Driver, settings: Settings) -> list[dict[str, object]]:
    records = driver.execute_query(
        "MATCH (r:PipelineRun) RETURN r ORDER BY r.started_at", database_=settings.neo4j.database
    ).records
    return [dict(r["r"]) for r in records]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return generate_shop(SHOP, tmp_path / "shop").folder


def test_full_run_records_timed_steps_and_activates_then_a_refused_gate_is_an_outcome(
    graph: neo4j.Driver, settings: Settings, shop: Path, tmp_path: Path
) -> None:
    env = {**session_server_env(settings), "KGREC_HOME": str(tmp_path / "home")}
    result = run_kgrec("pipeline", "run", "--input", str(shop), *MODEL_ARGS, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "succeeded, activated" in result.stdout

    [record] = runs(graph, settings)
    assert record["status"] == "succeeded" and record["activated"] is True
    assert record["attempts"] == 1 and record["input"] == str(shop.resolve())
    steps = json.loads(str(record["steps"]))
    assert list(steps) == list(STEPS)
    for name, step in steps.items():
        assert step["status"] == "done", name
        assert step["seconds"] is not None and step["seconds"] >= 0, name
        assert step["started_at"] <= step["ended_at"], name
    version = steps["train"]["outputs"]["version_id"]
    active = graph.execute_query(
        "MATCH (v:ModelVersion {active: true}) RETURN v.version_id AS id",
        database_=settings.neo4j.database,
    ).records
    assert [r["id"] for r in active] == [version]
    ingest_run = steps["ingest"]["outputs"]["ingest_run_id"]
    assert (
        count(graph, settings, "MATCH (r:IngestRun {run_id: $id}) RETURN count(r)", id=ingest_run)
        == 1
    )
    forecast = steps["forecast"]["outputs"]["forecast_version"]
    query = "MATCH (f:Forecast {model_version: $v, current: true}) RETURN count(f)"
    assert count(graph, settings, query, v=forecast) > 0
    assert steps["gate"]["outputs"]["decision"] == "passed"
    # Activation is audited by the registry, as from `kgrec models activate`.
    assert (
        count(graph, settings, "MATCH (e:AuditEvent {after: $v}) RETURN count(e)", v=version) == 1
    )

    # Same data, same seed: the new version does not beat the active one by the margin. The run
    # succeeds, says so, keeps the active model, and still forecasts.
    again = run_kgrec(
        "pipeline", "run", "--input", str(shop), *MODEL_ARGS, "--fresh", env=env, timeout=600
    )
    assert again.returncode == 0, again.stderr
    assert "NOT activated" in again.stdout and "does not beat" in again.stdout
    second = runs(graph, settings)[-1]
    assert second["status"] == "succeeded" and second["activated"] is False
    second_steps = json.loads(str(second["steps"]))
    assert second_steps["gate"]["outputs"]["decision"] == "refused"
    assert second_steps["activate"]["status"] == "skipped"
    assert second_steps["forecast"]["status"] == "done"
    assert [r["id"] for r in active] == [
        r["id"]
        for r in graph.execute_query(
            "MATCH (v:ModelVersion {active: true}) RETURN v.version_id AS id",
            database_=settings.neo4j.database,
        ).records
    ]

    status = run_kgrec("pipeline", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert str(record["run_id"]) in status.stdout and str(second["run_id"]) in status.stdout
    assert "succeeded, not activated" in status.stdout


def test_a_second_run_is_refused_naming_the_holder(
    neo4j_driver: neo4j.Driver, settings: Settings, shop: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    lock = PipelineLock(lock_path(with_home(settings, home)))
    env = {**session_server_env(settings), "KGREC_HOME": str(home)}
    with lock.held(run_id="pipeline-held-by-the-test"):
        holder = lock.read_holder()
        assert holder is not None and holder.pid == os.getpid()
        result = run_kgrec("pipeline", "run", "--input", str(shop), *MODEL_ARGS, env=env)
    assert result.returncode == 1
    assert "another pipeline run holds" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert f"started {holder.started_at}" in result.stderr
    assert "pipeline-held-by-the-test" in result.stderr
    # Released: the file no longer names anyone.
    assert lock.read_holder() is None


def test_crash_after_train_resumes_without_reloading_or_retraining(
    graph: neo4j.Driver, settings: Settings, shop: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    local = with_home(settings, home)

    def crash_after_train(name: str, record: StepRecord) -> None:
        if name == "train":
            raise Crash("killed after train")

    with pytest.raises(Crash):
        run_pipeline(local, graph, shop, OPTIONS, after_step=crash_after_train)
    [crashed] = runs(graph, settings)
    steps = json.loads(str(crashed["steps"]))
    assert crashed["status"] == "running"  # what a killed process leaves
    assert [steps[s]["status"] for s in STEPS] == ["done", "done", *["pending"] * 4]
    version = steps["train"]["outputs"]["version_id"]
    ingest_runs = count(graph, settings, "MATCH (r:IngestRun) RETURN count(r)")
    versions = count(graph, settings, "MATCH (v:ModelVersion) RETURN count(v)")
    assert (ingest_runs, versions) == (1, 1)

    # The dead process also left its name in the lock file (as SIGKILL would).
    lock_file = lock_path(local)
    lock_file.write_text(
        json.dumps(
            {
                "pid": dead_pid(),
                "host": "this-host",
                "started_at": "2026-01-01T00:00:00+00:00",
                "run_id": crashed["run_id"],
            }
        )
    )
    env = {**session_server_env(settings), "KGREC_HOME": str(home)}
    result = run_kgrec("pipeline", "run", "--input", str(shop), *MODEL_ARGS, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Took over a stale pipeline lock" in result.stdout
    assert f"Resuming pipeline run {crashed['run_id']}" in result.stdout

    [resumed] = runs(graph, settings)
    assert resumed["run_id"] == crashed["run_id"]
    assert resumed["status"] == "succeeded" and resumed["attempts"] == 2
    steps = json.loads(str(resumed["steps"]))
    assert steps["ingest"]["reused"] and steps["train"]["reused"]
    assert steps["train"]["outputs"]["version_id"] == version
    assert all(steps[s]["status"] == "done" and not steps[s]["reused"] for s in STEPS[2:])
    assert count(graph, settings, "MATCH (r:IngestRun) RETURN count(r)") == ingest_runs
    assert count(graph, settings, "MATCH (v:ModelVersion) RETURN count(v)") == versions
    active = graph.execute_query(
        "MATCH (v:ModelVersion {active: true}) RETURN v.version_id AS id",
        database_=settings.neo4j.database,
    ).records
    assert [r["id"] for r in active] == [version]

    # Nothing left to resume: --resume says so instead of starting a new run.
    nothing = run_kgrec(
        "pipeline", "run", "--input", str(shop), *MODEL_ARGS, "--resume", env=env, timeout=120
    )
    assert nothing.returncode == 1
    assert "no unfinished pipeline run" in nothing.stderr
