"""Offline backup and restore of everything a kgrec installation keeps on disk.

Neo4j Community has no online backup, and a copy of store files taken while the server writes
is not a consistent store. So a backup is taken with the local Neo4j and the API stopped: one
`.tar.gz` holding the Neo4j store (`neo4j/data`), the model registry's artifacts (`models`), the
durable event logs (`events`), campaign exports and evaluation reports, plus `manifest.json`
(kgrec version, time, size and SHA-256 of every file).

Nothing is half-written: the archive is written to a temporary name and renamed when complete;
a restore checks every checksum before it touches the installation, unpacks into a folder next
to it, and only then moves each store into place. What it replaces is kept under
`KGREC_HOME/pre-restore-<time>/` (so a restore can itself be undone) unless the caller says
otherwise.

Secrets are not copied: `demo-keys.json` (plaintext demo keys) is left out; API keys live in
the graph, hashed. Downloaded data sets (`datasets`) and generated shops are caches that
`make datasets` / `kgrec demo` rebuild, so they are left out too.

A server that is not local (Docker, a managed Neo4j) is backed up with its own tools
(`neo4j-admin database dump`); `create_backup(..., include_graph=False)` still saves the files.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graph.errors import KgrecError
from graph.local import LocalNeo4j
from graph.settings import Settings

FORMAT = 1
MANIFEST = "manifest.json"
#: Folders of KGREC_HOME that are part of a backup (relative names inside the archive).
FILE_STORES = ("models", "events", "campaigns", "evaluations")
GRAPH_STORE = "neo4j/data"


class BackupError(KgrecError):
    """A backup or restore that cannot go ahead; nothing was changed."""


@dataclass(frozen=True)
class BackupFile:
    path: str  # inside the archive, e.g. "models/v3/weights.pt"
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    format: int
    created: str
    kgrec_version: str
    stores: tuple[str, ...]
    files: tuple[BackupFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": self.format,
                "created": self.created,
                "kgrec_version": self.kgrec_version,
                "stores": list(self.stores),
                "files": [f.__dict__ for f in self.files],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str, archive: Path) -> Manifest:
        try:
            raw: dict[str, Any] = json.loads(text)
            if raw["format"] != FORMAT:
                raise BackupError(
                    f"{archive}: backup format {raw['format']} is not supported (expected "
                    f"{FORMAT}); restore it with the kgrec version that wrote it "
                    f"({raw.get('kgrec_version')})"
                )
            return cls(
                format=raw["format"],
                created=raw["created"],
                kgrec_version=raw["kgrec_version"],
                stores=tuple(raw["stores"]),
                files=tuple(BackupFile(**f) for f in raw["files"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(f"{archive}: {MANIFEST} is unreadable ({exc})") from exc


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    replaced: Path | None  # where the previous stores were moved, if they were kept


def _layout(settings: Settings) -> tuple[Path, dict[str, Path]]:
    """KGREC_HOME and the folder on disk of every store, by its name in the archive."""
    home = settings.app.home.resolve()
    stores = {name: home / name for name in FILE_STORES}
    if settings.app.events_dir is not None:
        stores["events"] = settings.app.events_dir.resolve()
    stores[GRAPH_STORE] = LocalNeo4j(settings.neo4j, settings.neo4j.local_home(home)).data_dir
    return home, stores


def _require_stopped(settings: Settings, include_graph: bool, stores: dict[str, Path]) -> None:
    if include_graph:
        if not settings.neo4j.is_managed_locally:
            raise BackupError(
                f"Neo4j at {settings.neo4j.uri} is not managed by kgrec: back its database up "
                "with `neo4j-admin database dump` and run this with --no-graph for the files"
            )
        local = LocalNeo4j(settings.neo4j, settings.neo4j.local_home(settings.app.home.resolve()))
        if local.is_running():
            raise BackupError(
                "the local Neo4j is running: a copy of a live store is not consistent. "
                "Stop it first (`kgrec neo4j stop`), then run this again"
            )
    busy = [str(lock.parent) for lock in _event_log_locks(stores["events"]) if _held(lock)]
    if busy:
        raise BackupError(
            f"an API process holds the event log in {', '.join(busy)}: stop the API first "
            "(events written during the copy could be missed)"
        )


def _event_log_locks(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from folder.rglob(".lock")


def _held(lock: Path) -> bool:
    """True when another process holds the flock an EventLog takes on `lock`."""
    with lock.open("ab") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(name: str, folder: Path) -> Iterator[tuple[str, Path]]:
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != ".lock":
            yield f"{name}/{path.relative_to(folder).as_posix()}", path


def create_backup(
    settings: Settings, out: Path, *, include_graph: bool = True, version: str = "unknown"
) -> Manifest:
    """Writes every store to `out` (a .tar.gz) and returns its manifest."""
    _home, stores = _layout(settings)
    if not include_graph:
        del stores[GRAPH_STORE]
    _require_stopped(settings, include_graph, stores)
    if include_graph and not stores[GRAPH_STORE].is_dir():
        raise BackupError(f"no Neo4j store at {stores[GRAPH_STORE]}: nothing to back up")
    out = out.resolve()
    if out.exists():
        raise BackupError(f"{out} exists: choose another name (a backup never overwrites)")
    out.parent.mkdir(parents=True, exist_ok=True)
    entries = [entry for name, folder in stores.items() for entry in _files(name, folder)]
    files = tuple(BackupFile(arc, path.stat().st_size, _sha256(path)) for arc, path in entries)
    manifest = Manifest(
        format=FORMAT,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        kgrec_version=version,
        stores=tuple(stores),
        files=files,
    )
    fd, partial_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    partial = Path(partial_name)
    try:
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            data = manifest.to_json().encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(data)
            info.mtime = int(datetime.now(UTC).timestamp())
            with tempfile.TemporaryFile() as buffer:
                buffer.write(data)
                buffer.seek(0)
                tar.addfile(info, buffer)
            for arc, path in entries:
                tar.add(path, arcname=arc, recursive=False)
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        partial.rename(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest


def read_manifest(archive: Path) -> Manifest:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise KeyError(MANIFEST)
            return Manifest.from_json(member.read().decode(), archive)
    except FileNotFoundError as exc:
        raise BackupError(f"{archive}: no such file") from exc
    except KeyError as exc:
        raise BackupError(f"{archive}: not a kgrec backup (no {MANIFEST})") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{archive}: not a readable .tar.gz ({exc})") from exc


def _unpack_verified(archive: Path, manifest: Manifest, into: Path) -> None:
    """Unpacks into `into` and checks every file against the manifest (raises on any mismatch)."""
    expected = {f.path: f for f in manifest.files}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name != MANIFEST]
            unknown = sorted({m.name for m in members} - set(expected))
            if unknown:
                raise BackupError(f"{archive}: files not in the manifest: {unknown[:5]}")
            tar.extractall(into, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{archive}: cannot be unpacked ({exc})") from exc
    for entry in manifest.files:
        path = into / entry.path
        if not path.is_file():
            raise BackupError(f"{archive}: {entry.path} is missing")
        if path.stat().st_size != entry.size or _sha256(path) != entry.sha256:
            raise BackupError(f"{archive}: {entry.path} does not match its checksum (damaged)")


def verify_backup(archive: Path) -> Manifest:
    """Reads the whole archive and checks every checksum; changes nothing."""
    manifest = read_manifest(archive)
    with tempfile.TemporaryDirectory(prefix="kgrec-verify-") as scratch:
        _unpack_verified(archive, manifest, Path(scratch))
    return manifest


def restore_backup(
    settings: Settings, archive: Path, *, keep_previous: bool = True
) -> RestoreResult:
    """Replaces the stores named in the backup's manifest with its copy.

    Checked before anything changes: the archive is complete and undamaged, Neo4j and the API
    are stopped. The previous stores are moved to `KGREC_HOME/pre-restore-<time>/` (or deleted
    when `keep_previous` is false)."""
    archive = archive.resolve()
    manifest = read_manifest(archive)
    home, stores = _layout(settings)
    _require_stopped(settings, GRAPH_STORE in manifest.stores, stores)
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=home))
    try:
        _unpack_verified(archive, manifest, staging)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        previous = home / f"pre-restore-{stamp}"
        for name in manifest.stores:
            target = stores[name]
            if target.exists():
                if keep_previous:
                    (previous / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(target, previous / name)
                else:
                    shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            restored = staging / name
            if restored.exists():
                shutil.move(restored, target)
            else:
                target.mkdir()  # the store was empty when the backup was taken
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    replaced = previous if keep_previous and previous.exists() else None
    return RestoreResult(manifest, replaced)
