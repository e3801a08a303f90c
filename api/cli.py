"""The `kgrec` command line: one entry point for operators, analysts and the Makefile."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer
from rich.console import Console

from graph.driver import driver_scope
from graph.errors import KgrecError
from graph.local import LocalNeo4j
from graph.schema import apply_schema
from graph.settings import DEVELOPMENT_PASSWORD, Settings, get_settings

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

console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True)

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


@app.command()
def demo() -> None:
    """Start Neo4j, apply the schema and print how to connect (what `make demo` runs)."""
    settings = get_settings()
    _ensure_server(settings)
    _apply_schema(settings)
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


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    uvicorn.run("api.app:create_app", factory=True, host=host, port=port)


@app.command("version")
def show_version() -> None:
    """Print the kgrec version."""
    console.print(package_version())


def package_version() -> str:
    try:
        return version("kgrec")
    except PackageNotFoundError:
        return "0+unknown"


def main() -> None:
    """Console-script entry point: project errors become one readable message and exit code 1."""
    try:
        app()
    except KgrecError as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
