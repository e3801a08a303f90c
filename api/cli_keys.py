"""`kgrec keys create|list|revoke`: API keys with roles, from the shell."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from api.console import console, err_console
from graph.driver import driver_scope
from graph.keys import ROLE_SCOPES, KeyStore, Role
from graph.settings import get_settings

keys_app = typer.Typer(
    help="API keys with roles (storefront, merchandiser, analyst, admin): create, list, revoke.",
    no_args_is_help=True,
)


@keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="What the key may do.", case_sensitive=False)],
    name: Annotated[
        str | None, typer.Option(help="Who or what uses the key (default: the role).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
) -> None:
    """Create a key and print it once: only its hash is stored."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        info, plaintext = KeyStore(driver, database=settings.neo4j.database).create(
            role, name or f"{role.value} key", reason=reason
        )
    scopes = ", ".join(sorted(ROLE_SCOPES[info.role]))
    console.print(
        f"Created API key {info.key_id} ({info.name!r}, role {info.role}: {scopes}):",
        markup=False,
    )
    console.print(plaintext, markup=False, soft_wrap=True)
    err_console.print(
        "warning: this is the only time the key is shown; kgrec keeps only its hash. "
        "Store it now (a secret manager, not the repository).",
        markup=False,
    )


@keys_app.command("list")
def list_keys(
    all_keys: Annotated[bool, typer.Option("--all", help="Also show revoked keys.")] = False,
) -> None:
    """List keys (ids, names, roles, dates; never secrets)."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        keys = KeyStore(driver, database=settings.neo4j.database).list()
    shown = [k for k in keys if all_keys or k.active]
    if not shown:
        console.print("No API keys. Create one with: kgrec keys create --role storefront")
        return
    table = Table(show_edge=False)
    for column in ("key_id", "name", "role", "created (UTC)", "status"):
        table.add_column(column)
    for key in shown:
        state = "active" if key.revoked_at is None else f"revoked {key.revoked_at:%Y-%m-%d %H:%M}"
        table.add_row(key.key_id, key.name, key.role, f"{key.created_at:%Y-%m-%d %H:%M}", state)
    console.print(table)
    revoked = len(keys) - sum(k.active for k in keys)
    if revoked and not all_keys:
        console.print(f"({revoked} revoked not shown; --all shows them)")


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`kgrec keys list`).")],
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
) -> None:
    """Revoke a key; the API refuses it within KGREC_API_KEY_REFRESH_S."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        info = KeyStore(driver, database=settings.neo4j.database).revoke(key_id, reason=reason)
    console.print(
        f"Revoked API key {info.key_id} ({info.name!r}, role {info.role}); running APIs refuse "
        f"it within {settings.app.api_key_refresh_s:g} s.",
        markup=False,
    )
