"""Offline backup and restore: a graph and the file stores come back exactly; a damaged archive,
a running server or a held event log stop the operation before anything changes."""

from __future__ import annotations

import fcntl
import tarfile
from pathlib import Path

import pytest

from graph.backup import BackupError, create_backup, restore_backup, verify_backup
from graph.driver import open_driver
from graph.local import LocalNeo4j
from graph.settings import AppSettings, Environment, Neo4jSettings, Settings, load_settings
from tests.conftest import free_port


def _settings(home: Path) -> Settings:
    return load_settings(
        app=AppSettings(environment=Environment.test, home=home),
        neo4j=Neo4jSettings(
            uri=f"bolt://127.0.0.1:{free_port()}",
            auth_enabled=False,
            managed="yes",
            heap="512m",
            pagecache="128m",
        ),
    )


def _graph(settings: Settings) -> list[tuple[str, int]]:
    with open_driver(settings.neo4j) as driver:
        records = driver.execute_query(
            "MATCH (p:Product) OPTIONAL MATCH (p)<-[r:PURCHASED]-() "
            "RETURN p.product_id AS id, count(r) AS n ORDER BY id"
        ).records
    return [(r["id"], r["n"]) for r in records]


def _write(settings: Settings, cypher: str) -> None:
    with open_driver(settings.neo4j) as driver:
        driver.execute_query(cypher)


def _files(home: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(home)): p.read_bytes()
        for store in ("models", "events")
        for p in sorted((home / store).rglob("*"))
        if p.is_file()
    }


@pytest.mark.integration
@pytest.mark.slow
def test_backup_then_restore_brings_graph_and_files_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = _settings(home)
    local = LocalNeo4j(settings.neo4j, settings.neo4j.local_home(home))
    (home / "models" / "v1").mkdir(parents=True)
    (home / "models" / "v1" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (home / "events").mkdir()
    (home / "events" / "segment-000001.jsonl").write_text('{"event_id": "e1"}\n')
    (home / "demo-keys.json").write_text('{"admin": "kgr_secret"}')
    local.start()
    try:
        _write(
            settings,
            "CREATE (c:Customer {customer_id: 'c1'}), (a:Product {product_id: 'a'}), "
            "(b:Product {product_id: 'b'}), (c)-[:PURCHASED {count: 2}]->(a), "
            "(c)-[:PURCHASED {count: 1}]->(b)",
        )
        before = _graph(settings)
        with pytest.raises(BackupError, match="kgrec neo4j stop"):
            create_backup(settings, tmp_path / "live.tar.gz")
        assert not (tmp_path / "live.tar.gz").exists()
    finally:
        local.stop()
    files_before = _files(home)

    archive = tmp_path / "backup.tar.gz"
    manifest = create_backup(settings, archive, version="test")
    assert verify_backup(archive).files == manifest.files
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "models/v1/weights.bin" in names and "events/segment-000001.jsonl" in names
    assert any(n.startswith("neo4j/data/") for n in names)
    assert not any("demo-keys" in n for n in names)  # no plaintext secrets in a backup
    with pytest.raises(BackupError, match="exists"):
        create_backup(settings, archive)

    # Damage done after the backup: a product deleted, a file changed, a new file added.
    local.start()
    try:
        _write(settings, "MATCH (p:Product {product_id: 'b'}) DETACH DELETE p")
        assert _graph(settings) != before
    finally:
        local.stop()
    (home / "models" / "v1" / "weights.bin").write_bytes(b"corrupted")
    (home / "events" / "segment-000002.jsonl").write_text('{"event_id": "e2"}\n')

    result = restore_backup(settings, archive)
    assert _files(home) == files_before
    assert result.replaced is not None
    assert (result.replaced / "events" / "segment-000002.jsonl").exists()  # kept, not lost
    local.start()
    try:
        assert _graph(settings) == before
    finally:
        local.stop()


def test_damaged_archive_is_refused_before_anything_changes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = _settings(home)
    (home / "models").mkdir(parents=True)
    (home / "models" / "a.bin").write_bytes(b"original")
    archive = tmp_path / "files.tar.gz"
    create_backup(settings, archive, include_graph=False)

    # Rewrite the archive with one file's bytes changed but the manifest kept.
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(damaged, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member)
            if member.name == "models/a.bin":
                (tmp_path / "x").write_bytes(b"tampered")
                member.size = len(b"tampered")
                with (tmp_path / "x").open("rb") as fake:
                    dst.addfile(member, fake)
            else:
                dst.addfile(member, data)
    (home / "models" / "a.bin").write_bytes(b"current")
    with pytest.raises(BackupError, match=r"models/a\.bin does not match its checksum"):
        restore_backup(settings, damaged)
    assert (home / "models" / "a.bin").read_bytes() == b"current"
    assert not list(home.glob("pre-restore-*"))
    with pytest.raises(BackupError, match="not a kgrec backup"):
        with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as other:
            other.add(home / "models" / "a.bin", arcname="a.bin")
        verify_backup(tmp_path / "other.tar.gz")

    restore_backup(settings, archive, keep_previous=False)
    assert (home / "models" / "a.bin").read_bytes() == b"original"


def test_a_held_event_log_stops_the_backup(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = _settings(home)
    (home / "events" / "worker-2").mkdir(parents=True)
    with (home / "events" / "worker-2" / ".lock").open("ab") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BackupError, match="stop the API first"):
            create_backup(settings, tmp_path / "b.tar.gz", include_graph=False)
    assert not (tmp_path / "b.tar.gz").exists()
    assert not list(tmp_path.glob(".b.tar.gz.*"))
