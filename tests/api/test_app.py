"""The API on a real HTTP server (uvicorn in its own process), as a storefront would call it."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from graph.settings import Settings
from tests.api.test_cli import environment, session_server_env
from tests.conftest import free_port


@contextmanager
def api_server(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    # The server's log goes to a file, not a pipe: nobody reads a pipe while the tests run, and
    # a full one (64 KiB of warnings) blocks the server's next log line, and so the server.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
            env=environment(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{base}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        output = log.read().decode(errors="replace")
                        pytest.fail(f"API server did not start:\n{output}")
                    time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.mark.integration
def test_ready_when_neo4j_answers(neo4j_driver: object, settings: Settings) -> None:
    with api_server(session_server_env(settings)) as base:
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        # Reachable at once; ready once the serving snapshot is loaded (503 until then).
        deadline = time.monotonic() + 60
        while (ready := httpx.get(f"{base}/readyz")).status_code != 200:
            assert ready.json()["neo4j"] == "reachable", ready.text
            assert "snapshot" in ready.json()["detail"], ready.text
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.2)
        assert ready.json()["status"] == "ready" and ready.json()["neo4j"] == "reachable"


def test_not_ready_names_the_server(tmp_path: object) -> None:
    port = free_port()
    env = {
        "KGREC_HOME": str(tmp_path),
        "NEO4J_URI": f"bolt://127.0.0.1:{port}",
        "NEO4J_CONNECTION_TIMEOUT_S": "2",
    }
    with api_server(env) as base:
        assert httpx.get(f"{base}/healthz").status_code == 200
        ready = httpx.get(f"{base}/readyz", timeout=30)
        assert ready.status_code == 503
        body = ready.json()
        assert body["neo4j"] == "unreachable"
        assert f"bolt://127.0.0.1:{port}" in body["detail"]


def _process_of(connection: http.client.HTTPConnection) -> int:
    """The worker behind a keep-alive connection (`/readyz` names its process)."""
    connection.request("GET", "/readyz")
    return int(json.loads(connection.getresponse().read())["process_id"])


@contextmanager
def two_workers(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`kgrec serve --workers 2`, once both workers say ready; its log goes to a file. In its
    own process group, so that whatever a test leaves running (orphaned workers included) is
    killed at the end."""
    port = free_port()
    env = {**session_server_env(settings), "KGREC_EVENTS_DIR": str(tmp_path / "events")}
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", "2"],
            env=environment(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + 90
        while len(seen) < 2:
            assert time.monotonic() < deadline and process.poll() is None, seen
            try:
                with httpx.Client() as client:  # a new connection each time
                    body = client.get(f"http://127.0.0.1:{port}/readyz").json()
                if body["status"] == "ready":
                    seen.add(body["process_id"])
            except httpx.TransportError:
                time.sleep(0.2)
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


@pytest.mark.integration
def test_two_workers_share_the_port_evenly_and_stop_together(
    neo4j_driver: object, settings: Settings, tmp_path: Path
) -> None:
    """`kgrec serve --workers 2`: two processes, each ready with its own snapshot and event
    log, both answering on one port; keep-alive connections split evenly (the kernel's hash
    split 16 of them 13/3 in some runs) and new ones go where connections closed; SIGTERM
    stops them all."""
    with two_workers(settings, tmp_path) as (process, port):
        assert (tmp_path / "events" / "worker-2").is_dir()  # the second process's own log
        connections = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(16)]
        owners = [_process_of(c) for c in connections]
        split = Counter(owners)
        assert sorted(split.values()) == [8, 8], split
        # Close every connection of one worker: the next 8 all go to it.
        emptied = owners[0]
        for connection, owner in zip(connections, owners, strict=True):
            if owner == emptied:
                connection.close()
        time.sleep(0.5)  # the closes reach the parent
        # (The whole exchange takes well under uvicorn's 5 s keep-alive timeout, after which
        # idle connections of the other worker would close too.)
        fresh = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(8)]
        assert [_process_of(c) for c in fresh] == [emptied] * 8
        for connection in connections + fresh:
            connection.close()
        process.terminate()
        code = process.wait(timeout=60)
        assert code == 0, (tmp_path / "serve.log").read_text()


@pytest.mark.integration
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_dead_worker_stops_the_server_with_an_error(
    neo4j_driver: object, settings: Settings, tmp_path: Path, how: signal.Signals
) -> None:
    """A worker that ends on its own (killed outright, or stopped gracefully by someone
    else's SIGTERM): the other is stopped and `kgrec serve` exits non-zero naming it, so the
    process manager restarts the whole server."""
    with two_workers(settings, tmp_path) as (process, port):
        victim = _process_of(http.client.HTTPConnection("127.0.0.1", port))
        os.kill(victim, how)
        assert process.wait(timeout=60) == 1
        log = (tmp_path / "serve.log").read_text()
        assert f"exited with code -{how.value}; the others stopped" in log, log
        with pytest.raises(httpx.TransportError):  # nothing answers on the port any more
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


@pytest.mark.integration
def test_workers_end_with_their_parent(
    neo4j_driver: object, settings: Settings, tmp_path: Path
) -> None:
    """`kgrec serve` killed outright (SIGKILL, no handler runs): its workers notice the end of
    their channel and shut down, instead of serving on as orphans."""
    with two_workers(settings, tmp_path) as (process, port):
        connections = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(2)]
        workers = {_process_of(c) for c in connections}
        assert len(workers) == 2
        for connection in connections:
            connection.close()
        process.kill()
        process.wait(timeout=30)
        deadline = time.monotonic() + 60
        while alive := [pid for pid in workers if _running(pid)]:
            assert time.monotonic() < deadline, f"workers {alive} outlived kgrec serve"
            time.sleep(0.2)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_api_does_not_load_pytorch() -> None:
    """Serving reads vectors from artifacts; PyTorch would add hundreds of MiB per worker
    (measured: 510 -> 1,100 MiB RSS when the models page pulled it in)."""
    code = "import sys, api.app; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
