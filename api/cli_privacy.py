"""`kgrec customers opt-out|opt-in|erase|erasures` and `kgrec events prune`: privacy from the
shell.

Erasing while an API server runs: the graph, artifacts and exports are erased here; each event
log the server holds is erased by the server itself (its shipper answers a request file that
names the customer by a salted hash, within a fraction of a second); its serving snapshot
reloads within `KGREC_SNAPSHOT_REFRESH_S` (erasures change its fingerprint), and lists still
queued for write-back skip a customer the graph no longer has. `DELETE /v1/customers/{id}`
also clears that process's memory at once.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from api.console import console, err_console
from graph.driver import driver_scope
from graph.keys import cli_actor
from graph.settings import get_settings
from recommender.privacy import (
    CustomerNotFound,
    ErasureReceipt,
    Privacy,
    PrivacyError,
    set_personalization,
)

customers_app = typer.Typer(
    help="A customer's privacy: opt-out, opt-in, erasure with a receipt.", no_args_is_help=True
)
events_app = typer.Typer(help="The storefront event log and event records.", no_args_is_help=True)


def _set(customer_id: str, enabled: bool, reason: str | None) -> None:
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        change = set_personalization(
            driver,
            database=settings.neo4j.database,
            customer_id=customer_id,
            enabled=enabled,
            actor=cli_actor(),
            reason=reason,
        )
    state = "personalised" if enabled else "opted out (non-personal lists, no embedding)"
    note = " (new customer: created with this choice)" if change.created else ""
    console.print(f"Customer {customer_id} is {state}{note}.", markup=False)
    console.print(
        "A running API picks it up within KGREC_SNAPSHOT_REFRESH_S.", markup=False, style="dim"
    )


@customers_app.command("opt-out")
def opt_out(
    customer_id: Annotated[str, typer.Argument(help="The shop's customer id.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
) -> None:
    """Opt a customer out of personalisation (audited)."""
    _set(customer_id, False, reason)


@customers_app.command("opt-in")
def opt_in(
    customer_id: Annotated[str, typer.Argument(help="The shop's customer id.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
) -> None:
    """Personalise a customer again (audited; the embedding returns at the next activation)."""
    _set(customer_id, True, reason)


@customers_app.command("erase")
def erase(
    customer_id: Annotated[str, typer.Argument(help="The shop's customer id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    delete_orders: Annotated[
        bool,
        typer.Option(
            "--delete-orders",
            help="Delete the customer's orders too (default: kept as anonymous sales records).",
        ),
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the receipt as JSON.")] = False,
) -> None:
    """Erase a customer from every store and print the receipt (stored without the id)."""
    if not yes and not typer.confirm(
        f"Erase customer {customer_id} from the graph, event logs, model artifacts and exports? "
        "This cannot be undone",
        default=False,
    ):
        err_console.print("Nothing erased.", markup=False)
        raise typer.Exit(1)
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        privacy = Privacy(driver, database=settings.neo4j.database, app=settings.app)
        try:
            receipt = privacy.erase(
                customer_id, actor=cli_actor(), delete_orders=delete_orders, reason=reason
            )
        except CustomerNotFound as exc:
            err_console.print(str(exc), markup=False)
            raise typer.Exit(3) from exc
        except PrivacyError as exc:
            err_console.print(f"error: {exc}", markup=False)
            raise typer.Exit(1) from exc
    if as_json:
        console.print(receipt.model_dump_json(indent=2), markup=False, soft_wrap=True)
        return
    _print_receipt(customer_id, receipt)


def _print_receipt(customer_id: str, receipt: ErasureReceipt) -> None:
    console.print(
        f"Erased customer {customer_id}: erasure {receipt.erasure_id} at "
        f"{receipt.erased_at:%Y-%m-%d %H:%M:%S} UTC",
        markup=False,
    )
    table = Table(show_edge=False)
    for column in ("store", "removed"):
        table.add_column(column)
    for store, counts in sorted(receipt.stores.items()):
        shown = ", ".join(f"{name} {value:,}" for name, value in counts.items() if value)
        table.add_row(store, shown or "nothing")
    console.print(table)
    console.print(
        f"Receipt stored as AuditEvent {receipt.erasure_id}, naming the customer as "
        f"{receipt.subject} (not the id).",
        markup=False,
    )
    for note in receipt.notes:
        err_console.print(f"note: {note}", markup=False)


@customers_app.command("erasures")
def erasures(
    customer_id: Annotated[str, typer.Argument(help="The shop's customer id.")],
) -> None:
    """Show the receipts of a customer's erasures (found by the keyed hash of the id)."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        receipts = Privacy(driver, database=settings.neo4j.database, app=settings.app).erasures(
            customer_id
        )
    if not receipts:
        console.print(f"No erasure of {customer_id} on record.", markup=False)
        raise typer.Exit(3)
    console.print(json.dumps(receipts, indent=2), markup=False, soft_wrap=True)


@customers_app.command("reapply-erasures")
def reapply_erasures() -> None:
    """Erase again every erased customer a store holds once more (run after
    `kgrec backup restore`, before serving, and after re-ingesting old source files)."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        privacy = Privacy(driver, database=settings.neo4j.database, app=settings.app)
        recorded = len(privacy.ledger())
        receipts = privacy.reapply_erasures(actor=cli_actor())
    console.print(
        f"{recorded:,} erasure(s) on record; {len(receipts):,} customer(s) were back in a store "
        "and are erased again.",
        markup=False,
    )
    for receipt in receipts:
        console.print(f"  erasure {receipt.erasure_id} ({receipt.subject})", markup=False)


@events_app.command("prune")
def prune(
    older_than: Annotated[
        int | None,
        typer.Option(
            "--older-than",
            min=1,
            help="Days to keep (default: KGREC_EVENT_RETENTION_DAYS).",
        ),
    ] = None,
) -> None:
    """Delete events older than the retention window: shipped event-log segments, dead
    letters, and the graph's event records (views, clicks, carts, ratings, served lists).
    Orders are kept."""
    settings = get_settings()
    days = older_than or settings.app.event_retention_days
    if days is None:
        err_console.print(
            "error: --older-than: give the days to keep, or set KGREC_EVENT_RETENTION_DAYS",
            markup=False,
        )
        raise typer.Exit(2)
    with driver_scope(settings.neo4j) as driver:
        report = Privacy(driver, database=settings.neo4j.database, app=settings.app).prune(
            days, actor=cli_actor()
        )
    console.print(
        f"Pruned events received before {report.cutoff:%Y-%m-%d %H:%M} UTC ({days} days):",
        markup=False,
    )
    console.print(
        f"  event logs: {report.segments:,} segment(s) with {report.log_events:,} event(s), "
        f"{report.dead_letters:,} dead letter(s)",
        markup=False,
    )
    if not report.graph:
        console.print("  graph: no event records older than that", markup=False)
    for rel_type, counts in sorted(report.graph.items()):
        shown = ", ".join(f"{name.replace('_', ' ')} {value:,}" for name, value in counts.items())
        console.print(f"  graph {rel_type}: {shown}", markup=False)
    for note in report.notes:
        err_console.print(f"note: {note}", markup=False)
