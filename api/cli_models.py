"""`kgrec train`, `kgrec evaluate` and `kgrec models ...`: the model lifecycle from the shell."""

from __future__ import annotations

import resource
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.console import console, err_console
from gnn.catalog import DEFAULT_MODEL, MODEL_NAMES
from graph.driver import driver_scope
from graph.errors import KgrecError
from graph.settings import Settings, get_settings

if TYPE_CHECKING:  # PyTorch loads only when a model command runs
    from gnn.registry import Registry
    from gnn.snapshot import GraphSnapshot
    from gnn.train import Experiment, ModelRun, RunOptions


models_app = typer.Typer(
    help="Model versions: list, show, activate (gated), roll back, query embeddings.",
    no_args_is_help=True,
)


class _EpochBar:
    """One progress bar per fit (epochs), with loss and validation NDCG@10 in the description;
    silent when stderr is not a terminal (a line per epoch is printed instead)."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("{task.description:<46}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("epochs"),
            TimeElapsedColumn(),
            console=err_console,
            disable=not err_console.is_terminal,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _EpochBar:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, name: str, epoch: int, total: int, loss: float, val: float | None) -> None:
        shown = "" if val is None else f" val NDCG@10 {val:.4f}"
        text = f"{name}: loss {loss:.4f}{shown}"
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(text, total=total)
        self.bar.update(self.tasks[name], completed=epoch, description=text)
        if not err_console.is_terminal:
            err_console.print(f"  {name} epoch {epoch}/{total}: loss {loss:.4f}{shown}")


def _export(settings: Settings, driver: Any) -> GraphSnapshot:
    from gnn.snapshot import export_snapshot

    with err_console.status("Exporting the graph..."):
        snapshot = export_snapshot(driver, database=settings.neo4j.database)
    counts = snapshot.counts
    console.print(
        f"Exported {counts['nodes.customer']:,} customers, {counts['nodes.product']:,} products, "
        f"{counts['interactions']:,} order lines in {snapshot.export_seconds:.1f} s."
    )
    return snapshot


def _experiment(snapshot: GraphSnapshot, options: RunOptions) -> Experiment:
    from gnn.train import Experiment

    try:
        experiment = Experiment(snapshot, options)
    except ValueError as exc:
        raise KgrecError(str(exc)) from exc
    split = experiment.split.describe()
    console.print(
        f"Temporal split: {split['train_interactions']:,} training, "
        f"{split['val_interactions']:,} validation ({options.val_days} days), "
        f"{split['test_interactions']:,} test ({options.test_days} days) order lines."
    )
    return experiment


def _memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(
    model: Annotated[
        str, typer.Option(help=f"Model to train: {', '.join(MODEL_NAMES)}.")
    ] = DEFAULT_MODEL,
    val_days: Annotated[
        int | None, typer.Option(min=1, help="Validation days (default KGREC_VALIDATION_DAYS).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (runs repeat exactly on the CPU).")] = 0,
    max_epochs: Annotated[int | None, typer.Option(min=1, help="Cap on epochs.")] = None,
    patience: Annotated[
        int, typer.Option(min=1, help="Epochs without validation gain before stopping.")
    ] = 3,
    refit: Annotated[
        bool, typer.Option(help="Refit on all orders for the chosen epochs before registering.")
    ] = True,
    activate: Annotated[
        bool, typer.Option(help="Activate the new version if it passes the gate.")
    ] = True,
    force: Annotated[bool, typer.Option(help="Activate even if the gate fails (audited).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (required with --force).")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Model parameter NAME=VALUE (repeatable).")
    ] = None,
) -> None:
    """Train a model on the graph, register it as a ModelVersion and (gated) activate it."""
    from gnn.train import RunOptions

    settings = get_settings()
    if model not in MODEL_NAMES:
        raise KgrecError(f"unknown model {model!r}; choose from {', '.join(MODEL_NAMES)}")
    if force and not reason:
        raise KgrecError("--force needs --reason: forced activations are audited")
    from gnn.train import parse_params

    params = parse_params(param, [model])
    dim = params.get(model, {}).get("dim")
    if dim is not None and dim != settings.app.embedding_dimensions:
        raise KgrecError(
            f"--param dim={dim}: served embeddings must match the vector indexes "
            f"(KGREC_EMBEDDING_DIMENSIONS={settings.app.embedding_dimensions}); change that "
            "setting instead"
        )
    options = RunOptions(
        val_days=val_days or settings.app.validation_days,
        test_days=0,
        seed=seed,
        refit=refit,
        patience=patience,
        max_epochs=max_epochs,
        dimensions=settings.app.embedding_dimensions,
        allow_repurchase=settings.app.allow_repurchase,
        params=params,
    )
    began = time.monotonic()
    with driver_scope(settings.neo4j) as driver:
        train_and_register(settings, driver, model, options, activate, force, reason)
    console.print(f"Done in {time.monotonic() - began:.1f} s.")


def train_and_register(
    settings: Settings,
    driver: Any,
    model: str,
    options: RunOptions,
    activate: bool = True,
    force: bool = False,
    reason: str | None = None,
) -> str:
    """Export, fit (early stopping, refit), register; activate through the gate if asked.
    Returns the new version id. Shared by `kgrec train` and `kgrec demo`."""
    from gnn.registry import Registry

    snapshot = _export(settings, driver)
    experiment = _experiment(snapshot, options)
    with _EpochBar() as bar:
        run = experiment.run(model, driver=driver, database=settings.neo4j.database, on_epoch=bar)
    val = run.validation.slices["all"]
    console.print(
        f"{model}: validation NDCG@10 {val.value('ndcg@10'):.4f} over {val.users:,} customers"
        f" (best epoch {run.best_epoch or '-'}); fit {run.fit_seconds:.1f} s, "
        f"refit {run.refit_seconds:.1f} s; peak memory {_memory_mib():,.0f} MiB."
    )
    registry = Registry(
        driver, database=settings.neo4j.database, root=settings.app.home.resolve() / "models"
    )
    version = registry.register(
        run.model,
        snapshot=snapshot,
        metrics=run.metrics(),
        training=run.training(experiment.split, options),
    )
    console.print(f"Registered {version.version_id} (artifacts in {version.artifacts}).")
    if activate and run.model.embedding_model:
        try:
            result = registry.activate(
                version.version_id,
                margin=settings.app.activation_margin,
                force=force,
                reason=reason,
            )
        except KgrecError as exc:
            console.print(f"Kept the active version: {exc}")
        else:
            console.print(
                f"Activated {version.version_id} (gate: {result.gate}"
                f"{', forced' if result.forced else ''}); embeddings written to "
                f"{result.nodes_written:,} nodes."
            )
    elif activate:
        console.print(f"{model} has no embeddings to serve; registered, not activated.")
    return version.version_id


def evaluate(
    models: Annotated[str, typer.Option(help="Comma-separated models, or 'all'.")] = "all",
    val_days: Annotated[
        int | None, typer.Option(min=1, help="Validation days (default KGREC_VALIDATION_DAYS).")
    ] = None,
    test_days: Annotated[int, typer.Option(min=1, help="Latest days held out as test.")] = 28,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    refit: Annotated[
        bool, typer.Option(help="Refit on training + validation before testing.")
    ] = True,
    bootstrap: Annotated[
        int, typer.Option(min=100, help="Bootstrap rounds for the 95% intervals.")
    ] = 1000,
    max_epochs: Annotated[int | None, typer.Option(min=1, help="Cap on epochs.")] = None,
    output: Annotated[
        Path | None,
        typer.Option("--json", help="Write the full results here (default under KGREC_HOME)."),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Model parameter [MODEL.]NAME=VALUE (repeatable).")
    ] = None,
) -> None:
    """Train every model the same way and compare them on the latest period (test)."""
    from gnn.report import headers, table_rows, ties_with_best, write_json
    from gnn.train import RunOptions, parse_params

    settings = get_settings()
    names = list(MODEL_NAMES) if models == "all" else [m.strip() for m in models.split(",")]
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        raise KgrecError(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")
    options = RunOptions(
        val_days=val_days or settings.app.validation_days,
        test_days=test_days,
        seed=seed,
        refit=refit,
        max_epochs=max_epochs,
        dimensions=settings.app.embedding_dimensions,
        allow_repurchase=settings.app.allow_repurchase,
        bootstrap_rounds=bootstrap,
        params=parse_params(param, names),
    )
    runs: dict[str, ModelRun] = {}
    with driver_scope(settings.neo4j) as driver:
        snapshot = _export(settings, driver)
        experiment = _experiment(snapshot, options)
        with _EpochBar() as bar:
            for name in names:
                runs[name] = experiment.run(
                    name, driver=driver, database=settings.neo4j.database, on_epoch=bar
                )
    results = {name: run.test for name, run in runs.items() if run.test is not None}
    seconds = {name: run.fit_seconds + run.refit_seconds for name, run in runs.items()}
    table = Table(title=f"Test period: last {test_days} days (95% bootstrap intervals)")
    for header in headers():
        table.add_column(header, justify="left" if header == "model" else "right")
    for row in table_rows(results, seconds):
        table.add_row(*row)
    console.print(table)
    verdict = ties_with_best(results)
    ties = [n for n, v in verdict.items() if v == "tie"]
    best = next((n for n, v in verdict.items() if v == "best"), None)
    if best:
        console.print(
            f"Best NDCG@10: {best}"
            + (f"; tied within the intervals: {', '.join(ties)}" if ties else "")
        )
    path = output or (
        settings.app.home.resolve() / "evaluations" / f"eval-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    )
    write_json(
        path,
        {
            "created_at": datetime.now(UTC).isoformat(),
            "split": experiment.split.describe(),
            "graph_counts": snapshot.counts,
            "data_hash": snapshot.data_hash(),
            "options": {
                "val_days": options.val_days,
                "test_days": options.test_days,
                "seed": seed,
                "refit": refit,
                "bootstrap_rounds": bootstrap,
                "allow_repurchase": options.allow_repurchase,
            },
            "models": {
                name: {
                    "params": run.model.params,
                    **run.metrics(),
                    **run.training(experiment.split, options),
                }
                for name, run in runs.items()
            },
            "verdict": verdict,
        },
    )
    console.print(f"Results written to {path}")


def _registry(settings: Settings, driver: Any) -> Registry:
    from gnn.registry import Registry

    return Registry(
        driver, database=settings.neo4j.database, root=settings.app.home.resolve() / "models"
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@models_app.command("list")
def models_list() -> None:
    """Model versions, newest first; the active one is marked."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        versions = _registry(settings, driver).versions()
    if not versions:
        console.print("No model versions yet: train one with `kgrec train`.")
        return
    table = Table(show_edge=False)
    width = max(len(v.version_id) for v in versions)
    table.add_column("version", no_wrap=True, min_width=width)
    table.add_column("model", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    for column in ("active", "val NDCG@10", "embeddings"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            v.version_id,
            v.model,
            f"{v.created_at:%Y-%m-%d %H:%M}",
            "active" if v.active else "",
            _fmt(v.val_ndcg10),
            "yes" if v.has_embeddings else "no",
        )
    console.print(table)


@models_app.command("show")
def models_show(version: Annotated[str, typer.Argument(help="Version id.")]) -> None:
    """Parameters, metrics and lineage of one version."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        v = _registry(settings, driver).get(version)
    props = v.properties
    console.print(f"{v.version_id} ({v.model}){' - active' if v.active else ''}")
    console.print(f"  created      {v.created_at:%Y-%m-%d %H:%M:%S %Z}")
    console.print(f"  parameters   {props.get('params')}")
    console.print(f"  val NDCG@10  {_fmt(v.val_ndcg10)}")
    console.print(f"  data hash    {props.get('data_hash')}")
    console.print(f"  ingest runs  {', '.join(props.get('ingest_runs') or []) or '-'}")
    console.print(f"  graph counts {props.get('graph_counts')}")
    console.print(f"  artifacts    {v.artifacts}")
    if props.get("previous_version"):
        console.print(f"  previous     {props['previous_version']}")


@models_app.command("activate")
def models_activate(
    version: Annotated[str, typer.Argument(help="Version id.")],
    force: Annotated[bool, typer.Option(help="Skip the gate (audited).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (required with --force).")] = None,
) -> None:
    """Activate a version if it beats the active one on validation by KGREC_ACTIVATION_MARGIN."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        result = _registry(settings, driver).activate(
            version, margin=settings.app.activation_margin, force=force, reason=reason
        )
    before = result.previous.version_id if result.previous else "none"
    console.print(
        f"Activated {result.version.version_id} (was {before}; gate: {result.gate}"
        f"{', forced' if result.forced else ''}); embeddings on {result.nodes_written:,} nodes."
    )


@models_app.command("rollback")
def models_rollback(
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
) -> None:
    """Reactivate the version that was active before the current one."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        result = _registry(settings, driver).rollback(reason=reason)
    before = result.previous.version_id if result.previous else "none"
    console.print(f"Rolled back from {before} to {result.version.version_id}.")


@models_app.command("audit")
def models_audit(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest first, at most.")] = 20,
) -> None:
    """Activations and rollbacks, newest first: who, what, when, before and after."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        events = _registry(settings, driver).audit_trail(limit)
    if not events:
        console.print("No activations or rollbacks yet.")
        return
    table = Table(show_edge=False)
    for column in ("when (UTC)", "action", "who", "before", "after", "forced", "reason"):
        table.add_column(column)
    for e in events:
        ts = e["ts"].to_native() if hasattr(e["ts"], "to_native") else e["ts"]
        table.add_row(
            f"{ts:%Y-%m-%d %H:%M:%S}",
            str(e.get("action") or ""),
            str(e.get("actor") or ""),
            str(e.get("before") or ""),
            str(e.get("after") or ""),
            "yes" if e.get("forced") else "",
            str(e.get("reason") or ""),
        )
    console.print(table)


@models_app.command("similar")
def models_similar(
    product_id: Annotated[str, typer.Argument(help="A product id.")],
    k: Annotated[int, typer.Option(min=1, max=100, help="How many.")] = 10,
) -> None:
    """Nearest products by the active embeddings, through the Neo4j vector index."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        records = driver.execute_query(
            """
            MATCH (p:Product {product_id: $id})
            WHERE p.embedding IS NOT NULL
            CALL db.index.vector.queryNodes('product_embedding', $k + 1, p.embedding)
            YIELD node, score
            WHERE node <> p
            RETURN node.product_id AS product_id, node.name AS name, score
            ORDER BY score DESC LIMIT $k
            """,
            id=product_id,
            k=k,
            database_=settings.neo4j.database,
        ).records
    if not records:
        raise KgrecError(
            f"no product {product_id!r} with an embedding: check the id, and that a model is "
            "active (`kgrec models list`)"
        )
    table = Table(show_edge=False)
    for column in ("product", "name", "cosine"):
        table.add_column(column)
    for r in records:
        table.add_row(r["product_id"], r["name"] or "", f"{r['score']:.4f}")
    console.print(table)
