"""`kgrec cypher list|show|run|query`: analysts' saved queries and their own, read-only."""

from __future__ import annotations

import csv
import io
import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from api.console import console, err_console
from graph.driver import driver_scope
from graph.saved_queries import (
    QueryResult,
    get_saved_query,
    list_saved_queries,
    parse_param_assignments,
    run_adhoc,
    run_saved,
)
from graph.settings import get_settings

cypher_app = typer.Typer(
    help="Analysts' Cypher: saved queries in cypher/ and ad-hoc ones, read-only, with a "
    "timeout (KGREC_CYPHER_TIMEOUT_S) and a row cap (KGREC_CYPHER_MAX_ROWS).",
    no_args_is_help=True,
)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="NAME=VALUE, repeatable; coerced by the declared type."),
]
FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="table, csv or json.", case_sensitive=False)
]
MaxRowsOption = Annotated[
    int | None,
    typer.Option(help="Rows at most (default and ceiling: KGREC_CYPHER_MAX_ROWS).", min=1),
]


@cypher_app.command("list")
def list_queries() -> None:
    """List the saved queries with their parameters and defaults."""
    table = Table(show_edge=False, show_lines=True)
    for column in ("name", "description", "parameters (default)"):
        table.add_column(column)
    for query in list_saved_queries():
        params = "\n".join(f"{p.name}={p.default!r} ({p.type})" for p in query.params)
        table.add_row(query.name, query.description, params or "-")
    console.print(table)


@cypher_app.command("show")
def show(name: Annotated[str, typer.Argument(help="A saved query (`kgrec cypher list`).")]) -> None:
    """Print a saved query's header and Cypher."""
    query = get_saved_query(name)
    console.print(query.path.read_text(encoding="utf-8"), markup=False, highlight=False)


@cypher_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="A saved query (`kgrec cypher list`).")],
    param: ParamOption = None,
    output: FormatOption = OutputFormat.table,
    max_rows: MaxRowsOption = None,
) -> None:
    """Run a saved query by name, in a read-only transaction."""
    settings = get_settings()
    params = parse_param_assignments(param or [])
    get_saved_query(name).resolve(params)  # a wrong name or parameter fails before connecting
    with driver_scope(settings.neo4j) as driver:
        result = run_saved(
            driver,
            name,
            params,
            database=settings.neo4j.database,
            timeout_s=settings.app.cypher_timeout_s,
            max_rows=min(max_rows or settings.app.cypher_max_rows, settings.app.cypher_max_rows),
        )
    _print(result, output)


@cypher_app.command("query")
def query(
    text: Annotated[str, typer.Argument(help="Cypher to read with; writes are refused.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="NAME=VALUE, repeatable; JSON values are parsed."),
    ] = None,
    output: FormatOption = OutputFormat.table,
    max_rows: MaxRowsOption = None,
) -> None:
    """Run your own read-only Cypher ($parameters from --param)."""
    settings = get_settings()
    params = {k: _json_or_text(v) for k, v in parse_param_assignments(param or []).items()}
    with driver_scope(settings.neo4j) as driver:
        result = run_adhoc(
            driver,
            text,
            params,
            database=settings.neo4j.database,
            timeout_s=settings.app.cypher_timeout_s,
            max_rows=min(max_rows or settings.app.cypher_max_rows, settings.app.cypher_max_rows),
        )
    _print(result, output)


def _json_or_text(value: str) -> Any:
    """`5` is a number and `[1,2]` a list; anything that is not JSON stays a string."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _print(result: QueryResult, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        body = {
            "columns": result.columns,
            "rows": result.rows,
            "row_count": result.row_count,
            "truncated": result.truncated,
            "elapsed_ms": result.elapsed_ms,
        }
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
    elif output is OutputFormat.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([_cell(v) for v in row] for row in result.rows)
        typer.echo(buffer.getvalue(), nl=False)
    else:
        table = Table(show_edge=False)
        for column in result.columns:
            table.add_column(column, overflow="fold")
        for row in result.rows:
            table.add_row(*(_cell(v) for v in row))
        console.print(table)
        console.print(f"{result.row_count} row(s) in {result.elapsed_ms:.0f} ms", style="dim")
    if result.truncated:
        err_console.print(
            f"warning: only the first {result.row_count} rows are shown "
            "(KGREC_CYPHER_MAX_ROWS / --max-rows)",
            markup=False,
        )
