"""The local Neo4j that kgrec runs itself: the `neo4j-local/` launcher as a background Java process.

Layout of its home folder (default `.kgrec/neo4j`):

    neo4j.conf          settings written at each start from `Neo4jSettings`
    neo4j.pid           pid of the running Java process
    data/               the store
    logs/launcher.log   the process's stdout and stderr (Neo4j's user log)
    logs/debug.log      Neo4j's debug log
    .lock               held while a start or stop is in progress
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

from graph.driver import open_driver
from graph.errors import GraphUnavailable, LocalNeo4jError
from graph.settings import Neo4jSettings

LAUNCHER_CLASS = "dev.kgrec.neo4j.LocalNeo4j"
READY_LINE = "KGREC_NEO4J_READY"
PASSWORD_ENV = "KGREC_NEO4J_PASSWORD"
MIN_JAVA = 17

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class LocalStatus:
    """What `kgrec neo4j status` reports."""

    running: bool
    pid: int | None
    uri: str
    home: Path
    resident_memory_bytes: int | None = None
    uptime_s: float | None = None


@dataclass(frozen=True)
class StartResult:
    already_running: bool
    pid: int
    seconds: float


@dataclass(frozen=True)
class StopResult:
    was_running: bool
    pid: int | None
    killed: bool
    seconds: float


class LocalNeo4j:
    """Starts, stops and reports on the project-managed Neo4j described by `settings`."""

    def __init__(self, settings: Neo4jSettings, home: Path) -> None:
        self.settings = settings
        self.home = home.resolve()
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.config_file = self.home / "neo4j.conf"
        self.pid_file = self.home / "neo4j.pid"
        self.launcher_log = self.logs_dir / "launcher.log"
        self.debug_log = self.logs_dir / "debug.log"
        self._lock_file = self.home / ".lock"

    # -- queries -------------------------------------------------------------------------------

    def status(self) -> LocalStatus:
        process = self._our_process()
        if process is None:
            return LocalStatus(False, None, self.settings.uri, self.home)
        try:
            with process.oneshot():
                rss = process.memory_info().rss
                uptime = time.time() - process.create_time()
        except psutil.Error:
            return LocalStatus(False, None, self.settings.uri, self.home)
        return LocalStatus(True, process.pid, self.settings.uri, self.home, rss, uptime)

    def is_running(self) -> bool:
        return self._our_process() is not None

    # -- start ---------------------------------------------------------------------------------

    def start(self, progress: Progress = _quiet) -> StartResult:
        """Starts the server and waits until Bolt accepts our credentials; idempotent.

        Raises:
            LocalNeo4jError: the launcher is not built, Java is missing or too old, the port is
                taken by another program, or the server failed to come up (with its log tail).
        """
        began = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        with self._locked():
            process = self._our_process()
            if process is not None:
                # Running already (perhaps still starting, from another shell): wait, start nothing.
                self._wait_until_ready(process, began, progress, starting=False)
                return StartResult(True, process.pid, time.monotonic() - began)
            self._check_port_free()
            command = self._command()
            self._write_config()
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            log_offset = self.launcher_log.stat().st_size if self.launcher_log.exists() else 0
            env = dict(os.environ)
            env.pop(PASSWORD_ENV, None)
            if self.settings.auth_enabled:
                env[PASSWORD_ENV] = self.settings.password.get_secret_value()
            progress(f"Starting Neo4j in {self.home} on {self.settings.host}:{self.settings.port}")
            with self.launcher_log.open("ab") as log:
                child = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.home,
                    # Its own session: Ctrl-C in the shell that started it must not stop the server.
                    start_new_session=True,
                )
            self.pid_file.write_text(f"{child.pid}\n")
            try:
                process = psutil.Process(child.pid)
                self._wait_until_ready(
                    process, began, progress, starting=True, log_offset=log_offset
                )
            except BaseException:
                self._terminate(child.pid)
                self.pid_file.unlink(missing_ok=True)
                raise
            return StartResult(False, child.pid, time.monotonic() - began)

    def _command(self) -> list[str]:
        classes = self.settings.launcher_dir / "classes"
        lib = self.settings.launcher_dir / "lib"
        plugins = self.settings.launcher_dir / "plugins"
        if not (classes / "dev" / "kgrec" / "neo4j" / "LocalNeo4j.class").exists() or not any(
            plugins.glob("apoc-core-*.jar")
        ):
            raise LocalNeo4jError(
                f"The local Neo4j launcher is not built (looked in {self.settings.launcher_dir}). "
                "Build it with `make neo4j-local` (Maven: mvn -f neo4j-local/pom.xml package)."
            )
        java = shutil.which(self.settings.java)
        if java is None:
            raise LocalNeo4jError(
                f"Java not found ({self.settings.java!r}). Install Java {MIN_JAVA}+ "
                "or set NEO4J_JAVA to its path."
            )
        version = _java_major_version(java)
        if version is not None and version < MIN_JAVA:
            raise LocalNeo4jError(
                f"{java} is Java {version}; Neo4j 5.26 needs Java {MIN_JAVA} or 21. "
                "Set NEO4J_JAVA to a newer one."
            )
        heap = self.settings.heap
        return [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:-OmitStackTraceInFastThrow",
            "-Dfile.encoding=UTF-8",
            # Marks the process as ours, with its home, so stop never signals another program.
            f"-Dkgrec.neo4j.home={self.home}",
            "-cp",
            f"{classes}{os.pathsep}{lib / '*'}",
            LAUNCHER_CLASS,
            str(self.home),
            str(self.config_file),
        ]

    def _write_config(self) -> None:
        address = f"{self.settings.host}:{self.settings.port}"
        lines = {
            "server.bolt.enabled": "true",
            "server.bolt.listen_address": address,
            "server.bolt.advertised_address": address,
            "server.http.enabled": "false",
            "server.https.enabled": "false",
            "server.directories.data": str(self.data_dir),
            "server.directories.logs": str(self.logs_dir),
            "server.directories.plugins": str(self.settings.launcher_dir / "plugins"),
            "server.memory.pagecache.size": self.settings.pagecache,
            "dbms.security.auth_enabled": str(self.settings.auth_enabled).lower(),
            "dbms.security.procedures.unrestricted": "apoc.*,gds.*",
            "dbms.usage_report.enabled": "false",
            "initial.dbms.default_database": self.settings.database,
        }
        text = "# Written by `kgrec neo4j start` from NEO4J_* settings; edits are overwritten.\n"
        text += "".join(f"{key}={value}\n" for key, value in lines.items())
        self.config_file.write_text(text)

    def _check_port_free(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            if probe.connect_ex((self.settings.host, self.settings.port)) == 0:
                raise LocalNeo4jError(
                    f"Port {self.settings.port} on {self.settings.host} is already in use by a "
                    f"program kgrec did not start (no live pid in {self.pid_file}). Stop it, "
                    "choose another port in NEO4J_URI, or set NEO4J_MANAGED=no to use that server."
                )

    def _wait_until_ready(
        self,
        process: psutil.Process,
        began: float,
        progress: Progress,
        *,
        starting: bool,
        log_offset: int = 0,
    ) -> None:
        deadline = began + self.settings.start_timeout_s
        announced = False
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not _alive(process):
                raise LocalNeo4jError(
                    f"Neo4j exited during start (pid {process.pid}).\n{self._log_tails(log_offset)}"
                )
            if not starting or READY_LINE in self._read_log(log_offset):
                if not announced and starting:
                    progress("Neo4j is up; checking Bolt connectivity")
                    announced = True
                try:
                    open_driver(self.settings).close()
                    return
                except GraphUnavailable as exc:
                    last_error = exc
            time.sleep(0.25)
        raise LocalNeo4jError(
            f"Neo4j did not accept connections at {self.settings.uri} within "
            f"{self.settings.start_timeout_s:.0f} s (NEO4J_START_TIMEOUT_S). "
            f"Last error: {last_error}\n{self._log_tails(log_offset)}"
        )

    # -- stop ----------------------------------------------------------------------------------

    def stop(self, progress: Progress = _quiet) -> StopResult:
        """Stops the server with SIGTERM (a clean shutdown), SIGKILL after the stop timeout."""
        began = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        with self._locked():
            process = self._our_process()
            if process is None:
                self.pid_file.unlink(missing_ok=True)
                return StopResult(False, None, False, time.monotonic() - began)
            progress(f"Stopping Neo4j (pid {process.pid})")
            killed = self._terminate(process.pid)
            self.pid_file.unlink(missing_ok=True)
            return StopResult(True, process.pid, killed, time.monotonic() - began)

    def _terminate(self, pid: int) -> bool:
        """SIGTERM, wait, then SIGKILL; returns whether it had to kill."""
        try:
            process = psutil.Process(pid)
            process.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            return False
        killed = False
        try:
            process.wait(timeout=self.settings.stop_timeout_s)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
            killed = True
        except psutil.NoSuchProcess:
            pass
        return killed

    # -- helpers -------------------------------------------------------------------------------

    def _our_process(self) -> psutil.Process | None:
        """The live process named in the pid file, if it is our launcher for this home."""
        try:
            pid = int(self.pid_file.read_text().strip())
            process = psutil.Process(pid)
            cmdline = process.cmdline()
        except (FileNotFoundError, ValueError, psutil.Error):
            return None
        if LAUNCHER_CLASS not in cmdline or f"-Dkgrec.neo4j.home={self.home}" not in cmdline:
            return None  # the pid was reused by another program
        return process if _alive(process) else None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock_file.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_log(self, offset: int) -> str:
        try:
            with self.launcher_log.open("rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def _log_tails(self, offset: int, lines: int = 25) -> str:
        parts = []
        launcher = self._read_log(offset).splitlines()[-lines:]
        parts.append(f"--- last lines of {self.launcher_log} ---")
        parts.extend(launcher or ["(empty)"])
        if self.debug_log.exists():
            debug = self.debug_log.read_text("utf-8", "replace").splitlines()
            problems = [line for line in debug if " ERROR " in line or " WARN " in line]
            if problems:
                parts.append(f"--- warnings and errors in {self.debug_log} ---")
                parts.extend(problems[-10:])
        return "\n".join(parts)


def _alive(process: psutil.Process) -> bool:
    try:
        if process.status() == psutil.STATUS_ZOMBIE:
            _reap(process.pid)
            return False
        return process.is_running()
    except psutil.Error:
        return False


def _reap(pid: int) -> None:
    """Collects a child of this process that has exited (tests start servers in-process)."""
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _java_major_version(java: str) -> int | None:
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    # e.g. 'openjdk version "17.0.15" 2025-04-15' or 'java version "1.8.0_392"'
    for token in out.split('"')[1:2]:
        head = token.split(".")
        major = head[1] if head[0] == "1" and len(head) > 1 else head[0]
        if major.isdigit():
            return int(major)
    return None
