"""`kgrec backup create|verify|restore`: offline copies of the graph and every file store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from api.console import console
from graph.backup import create_backup, read_manifest, restore_backup, verify_backup
from graph.settings import get_settings
from recommender.privacy import ERASURE_LEDGER_FILE

backup_app = typer.Typer(
    help="Offline backups (Neo4j store, model artifacts, event logs, campaign exports): "
    "create, verify, restore. Stop the API and Neo4j first.",
    no_args_is_help=True,
)


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


@backup_app.command("create")
def create(
    out: Annotated[
        Path | None,
        typer.Option(help="Archive to write (default KGREC_HOME/backups/kgrec-<time>.tar.gz)."),
    ] = None,
    graph: Annotated[
        bool,
        typer.Option(help="Include the local Neo4j store (--no-graph for a remote server)."),
    ] = True,
) -> None:
    """Write one .tar.gz with a checksummed manifest (stop the local Neo4j and the API first)."""
    from api.cli import package_version

    settings = get_settings()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = out or settings.app.home.resolve() / "backups" / f"kgrec-{stamp}.tar.gz"
    manifest = create_backup(settings, out, include_graph=graph, version=package_version())
    console.print(
        f"Backup written: {out.resolve()} ({len(manifest.files)} files, "
        f"{_size(manifest.total_bytes)} before compression; stores: "
        f"{', '.join(manifest.stores)})",
        markup=False,
    )


@backup_app.command("verify")
def verify(archive: Annotated[Path, typer.Argument(help="A backup archive.")]) -> None:
    """Read the whole archive and check every file's checksum; changes nothing."""
    manifest = verify_backup(archive)
    console.print(
        f"{archive}: intact ({len(manifest.files)} files, {_size(manifest.total_bytes)}, "
        f"taken {manifest.created} by kgrec {manifest.kgrec_version})",
        markup=False,
    )


@backup_app.command("restore")
def restore(
    archive: Annotated[Path, typer.Argument(help="A backup archive.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    keep_previous: Annotated[
        bool,
        typer.Option(help="Move the replaced stores to KGREC_HOME/pre-restore-<time>/."),
    ] = True,
) -> None:
    """Replace the stores with the backup's copy (checked before anything changes)."""
    manifest = read_manifest(archive)
    if not yes:
        typer.confirm(
            f"Replace {', '.join(manifest.stores)} with the backup taken {manifest.created}?",
            abort=True,
        )
    result = restore_backup(get_settings(), archive, keep_previous=keep_previous)
    console.print(
        f"Restored {len(manifest.files)} files from {archive} (taken {manifest.created}).",
        markup=False,
    )
    if result.replaced:
        console.print(f"The previous stores are in {result.replaced}", markup=False)
    settings = get_settings()
    if (settings.app.home.resolve() / ERASURE_LEDGER_FILE).exists():
        console.print(
            "Customers erased since this backup was taken are back in it: after "
            "`kgrec neo4j start`, run `kgrec customers reapply-erasures` BEFORE `kgrec serve`.",
            markup=False,
            style="bold",
        )
    else:
        console.print("Start again with `kgrec neo4j start` and `kgrec serve`.")
