"""The project-managed local Neo4j: start/stop idempotence, no stray process, clear failures."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from graph.driver import open_driver
from graph.errors import GraphUnavailable, LocalNeo4jError
from graph.local import LAUNCHER_CLASS, LocalNeo4j
from graph.settings import Neo4jSettings, Settings
from tests.conftest import free_port


def our_java_processes(home: Path) -> list[psutil.Process]:
    """Every live launcher for `home`, found in the process table (not via the pid file)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if LAUNCHER_CLASS in cmdline and f"-Dkgrec.neo4j.home={home.resolve()}" in cmdline:
            found.append(process)
    return found


@pytest.mark.integration
@pytest.mark.slow
def test_start_stop_lifecycle(tmp_path: Path) -> None:
    settings = Neo4jSettings(
        uri=f"bolt://127.0.0.1:{free_port()}",
        password="lifecycle-test-password",
        heap="512m",
        pagecache="128m",
    )
    local = LocalNeo4j(settings, tmp_path / "neo4j")
    assert not local.status().running

    first = local.start()
    try:
        assert not first.already_running
        status = local.status()
        assert status.running and status.pid == first.pid
        assert local.pid_file.read_text().strip() == str(first.pid)
        assert [p.pid for p in our_java_processes(local.home)] == [first.pid]

        second = local.start()
        assert second.already_running
        assert second.pid == first.pid
        assert [p.pid for p in our_java_processes(local.home)] == [first.pid]

        # Auth is on with the configured password; APOC core is loaded from the plugin folder.
        with open_driver(settings) as driver:
            version = driver.execute_query("RETURN apoc.version() AS v").records[0]["v"]
            assert version.startswith("5.26")
        wrong = settings.model_copy(update={"password": settings.password.__class__("wrong")})
        with pytest.raises(GraphUnavailable, match="NEO4J_PASSWORD"):
            open_driver(wrong)
    finally:
        stopped = local.stop()

    assert stopped.was_running and stopped.pid == first.pid and not stopped.killed
    assert our_java_processes(local.home) == []
    assert not local.status().running
    assert not local.pid_file.exists()
    assert "KGREC_NEO4J_STOPPED" in local.launcher_log.read_text()  # a clean shutdown
    assert not local.stop().was_running


@pytest.mark.integration
def test_start_refuses_a_port_held_by_another_program(
    neo4j_driver: object, settings: Settings, tmp_path: Path
) -> None:
    if not settings.neo4j.is_managed_locally:
        pytest.skip("the session server is external")
    # The session's server holds this port, but it is not this home's server.
    other = LocalNeo4j(settings.neo4j, tmp_path / "other")
    with pytest.raises(LocalNeo4jError, match=f"Port {settings.neo4j.port} .* already in use"):
        other.start()
    assert our_java_processes(other.home) == []


@pytest.mark.integration
def test_failed_start_shows_the_log_tail_and_leaves_no_process(tmp_path: Path) -> None:
    home = tmp_path / "neo4j"
    home.mkdir()
    (home / "data").write_text("a file where Neo4j expects its data folder")
    local = LocalNeo4j(
        Neo4jSettings(uri=f"bolt://127.0.0.1:{free_port()}", heap="256m", pagecache="64m"), home
    )
    with pytest.raises(LocalNeo4jError) as raised:
        local.start()
    message = str(raised.value)
    assert "Neo4j exited during start" in message
    assert f"last lines of {local.launcher_log}" in message
    assert str(home / "data") in message  # Neo4j's own complaint, from the log
    assert our_java_processes(home) == []
    assert not local.pid_file.exists()


def test_unbuilt_launcher_says_how_to_build_it(tmp_path: Path) -> None:
    local = LocalNeo4j(
        Neo4jSettings(launcher_dir=tmp_path / "target", uri=f"bolt://127.0.0.1:{free_port()}"),
        tmp_path / "neo4j",
    )
    with pytest.raises(LocalNeo4jError, match="make neo4j-local"):
        local.start()


def test_missing_java_is_named(tmp_path: Path) -> None:
    local = LocalNeo4j(
        Neo4jSettings(java="no-such-java-binary", uri=f"bolt://127.0.0.1:{free_port()}"),
        tmp_path / "neo4j",
    )
    with pytest.raises(LocalNeo4jError, match="NEO4J_JAVA"):
        local.start()


def test_stale_pid_file_is_not_running(tmp_path: Path) -> None:
    local = LocalNeo4j(Neo4jSettings(), tmp_path / "neo4j")
    local.home.mkdir(parents=True)
    # Our own pid is alive but is not a Neo4j launcher: it must not be taken for one (or stopped).
    local.pid_file.write_text(f"{psutil.Process().pid}\n")
    assert not local.status().running
    assert not local.stop().was_running
    assert not local.pid_file.exists()
