"""`kgrec pipeline run|status`: the whole refresh (ingest to forecast) as one locked, resumable
job; the logic is in api/pipeline.py."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from api.console import console, err_console
from api.pipeline import (
    STEPS,
    PipelineBusy,
    PipelineOptions,
    PipelineRun,
    ResumeMode,
    RunStore,
    run_pipeline,
)
from gnn.catalog import DEFAULT_MODEL, MODEL_NAMES
from graph.driver import driver_scope
from graph.errors import KgrecError
from graph.settings import get_settings

pipeline_app = typer.Typer(
    help="Ingest, train, evaluate, gate, activate and forecast as one resumable job.",
    no_args_is_help=True,
)


@pipeline_app.command("run")
def pipeline_run(
    input_folder: Annotated[
        Path, typer.Option("--input", help="Folder of CSV or Parquet files to ingest.")
    ],
    model: Annotated[
        str, typer.Option(help=f"Model to train: {', '.join(MODEL_NAMES)}.")
    ] = DEFAULT_MODEL,
    max_epochs: Annotated[int | None, typer.Option(min=1, help="Cap on epochs.")] = None,
    val_days: Annotated[
        int | None, typer.Option(min=1, help="Validation days (default KGREC_VALIDATION_DAYS).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    horizon: Annotated[int, typer.Option(min=1, max=365, help="Days to forecast.")] = 28,
    resume: Annotated[
        bool | None,
        typer.Option(
            "--resume/--fresh",
            help="--resume: continue the unfinished run for this input and model (an error if "
            "there is none); --fresh: start a new run. Default: resume an unfinished run when "
            "the input's content is unchanged, else start a new one.",
        ),
    ] = None,
) -> None:
    """Run the pipeline; one at a time; rerun the same command to resume after a crash."""
    from api.cli import _RichProgress  # the ingest progress bars (api.cli imports this module)

    if model not in MODEL_NAMES:
        raise KgrecError(f"unknown model {model!r}; choose from {', '.join(MODEL_NAMES)}")
    settings = get_settings()
    mode: ResumeMode = "auto" if resume is None else ("resume" if resume else "fresh")
    options = PipelineOptions(
        model=model, max_epochs=max_epochs, val_days=val_days, seed=seed, horizon=horizon
    )
    with driver_scope(settings.neo4j) as driver, _RichProgress() as progress:
        try:
            run = run_pipeline(
                settings, driver, input_folder, options, mode=mode, progress=progress
            )
        except Exception as exc:
            if not isinstance(exc, PipelineBusy):
                err_console.print(
                    "The pipeline run failed; its finished steps are recorded. Rerun the same "
                    "command to resume (`kgrec pipeline status` shows where it stopped).",
                    markup=False,
                )
            raise
    _print_runs([run])
    activate = run.steps["activate"].outputs
    if run.activated:
        console.print(f"Model {run.steps['train'].outputs['version_id']} is active.")
    else:
        console.print(
            f"Model {run.steps['train'].outputs['version_id']} was NOT activated: "
            f"{activate.get('reason')}; the active model stays {activate.get('active')}.",
            markup=False,
        )


@pipeline_app.command("status")
def pipeline_status(
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many runs.")] = 5,
) -> None:
    """The newest pipeline runs with each step's status and duration."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        runs = RunStore(driver, settings.neo4j.database).recent(limit)
    if not runs:
        console.print("No pipeline runs yet: start one with `kgrec pipeline run --input DIR`.")
        return
    _print_runs(runs)


def _result(name: str, outputs: dict[str, Any]) -> str:
    """The one output of a step an operator looks for."""
    if name == "ingest":
        return f"{outputs.get('ingest_run_id')} ({outputs.get('rows', 0):,} rows)"
    if name == "train":
        return str(outputs.get("version_id"))
    if name == "evaluate":
        value = outputs.get("val_ndcg10")
        active = outputs.get("active_val_ndcg10")
        shown = "-" if value is None else f"{value:.4f}"
        return f"val NDCG@10 {shown}" + ("" if active is None else f" (active {active:.4f})")
    if name == "gate":
        reason = outputs.get("reason")
        return str(outputs.get("decision")) + (f": {reason}" if reason else "")
    if name == "activate":
        return "activated" if outputs.get("activated") else "not activated"
    if name == "forecast":
        return f"{outputs.get('forecast_version')} ({outputs.get('at_risk', 0):,} at risk)"
    return ""


def _print_runs(runs: list[PipelineRun]) -> None:
    for run in runs:
        status = run.status
        if status == "running" and run.host == socket.gethostname() and not _alive(run.pid):
            status = f"interrupted (pid {run.pid} gone)"
        elif status == "succeeded":
            status = "succeeded, activated" if run.activated else "succeeded, not activated"
        console.print(
            f"{run.run_id}: {status}; started {run.started_at[:19].replace('T', ' ')} UTC, "
            f"attempt {run.attempts}, {run.seconds:.1f} s in steps; input {run.input}, "
            f"model {run.model}",
            markup=False,
        )
        table = Table(show_edge=False, box=None, padding=(0, 2))
        for column in ("step", "status", "seconds", "started (UTC)", "result"):
            table.add_column(column, justify="right" if column == "seconds" else "left")
        for name in STEPS:
            step = run.steps[name]
            table.add_row(
                name,
                step.status + (" (reused)" if step.reused else ""),
                "-" if step.seconds is None else f"{step.seconds:.1f}",
                (step.started_at or "-")[11:19] or "-",
                escape(step.error or (_result(name, step.outputs) if step.outputs else "")),
            )
        console.print(table)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    return True
