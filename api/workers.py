"""`kgrec serve --workers N`: N API processes behind one listening socket. The parent process
holds the socket, accepts each connection and hands it (SCM_RIGHTS over a Unix socket) to the
worker with the fewest open connections, ties in turn; the requests then go straight to that
worker, the parent never sees them.

Why not let the kernel spread the connections: with SO_REUSEPORT each connection is hashed to
a worker, and 16 keep-alive connections split 13/3 in about one run in ten (measured: p99 43 ms
at 1,000 lists/s against 8 ms with an 8/8 split, the busy worker saturated while the other
idled); with uvicorn's own `workers` sharing one socket, the first worker to wake accepts a
whole burst (724 or 1,312 lists/s from one run to the next). Node's cluster module hands
connections out from its primary process for the same reason.

A worker gets connections only once its application has started (it says so on its channel),
as the kernel only routes to a socket that listens; each closed connection is reported back,
so the counts stay right when clients come and go. If a worker dies, the others are stopped and
the command exits non-zero, so the process manager that runs it restarts the whole server.

`kgrec serve` runs this module in a fresh interpreter (`python -m api.workers HOST PORT N`):
the CLI process has every command's imports loaded (276 MiB: statsmodels, scipy, pandas, the
ingestion code), and spawned workers import the main module again, so serving from it cost
each process that much more. This module imports the standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import selectors
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

APP = "api.app:create_app"
READY = b"r"  # worker -> parent: the application started, send connections
CLOSED = b"x"  # worker -> parent: one of its connections closed
CONNECTION = b"c"  # parent -> worker: this message carries an accepted connection

log = logging.getLogger("kgrec.serve")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP (with
    # proto 0 every answer waited for a delayed ACK: 48 ms p50, measured). Accepted sockets
    # inherit it, and a worker rebuilding one from its descriptor reads it back from the kernel.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


class Balancer:
    """Which worker gets the next connection: the fewest open connections among the workers
    that are ready, ties going to the one after the last pick (round robin)."""

    def __init__(self, workers: int) -> None:
        self.open = [0] * workers
        self.ready = [False] * workers
        self._next = 0

    def pick(self, exclude: frozenset[int] = frozenset()) -> int | None:
        n = len(self.open)
        ready = [i for i in range(n) if self.ready[i] and i not in exclude]
        if not ready:
            return None
        chosen = min(ready, key=lambda i: (self.open[i], (i - self._next) % n))
        self._next = (chosen + 1) % n
        self.open[chosen] += 1
        return chosen

    def closed(self, worker: int) -> None:
        self.open[worker] = max(0, self.open[worker] - 1)

    def gone(self, worker: int) -> None:
        self.ready[worker] = False
        self.open[worker] = 0


def _notify(channel: socket.socket, message: bytes) -> None:
    # A full channel (the parent then over-counts this worker a little) or a parent that is
    # gone (the worker learns it from the end of its channel): nothing to do here.
    with contextlib.suppress(OSError):
        channel.send(message)


def _worker(channel: socket.socket, log_level: str) -> None:
    import uvicorn

    class HandedServer(uvicorn.Server):
        """uvicorn's server without a listening socket of its own: it serves the connections
        that arrive on `channel`."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])  # the application's lifespan; no listener
            loop = asyncio.get_running_loop()
            config, state, app_state = self.config, self.server_state, self.lifespan.state
            base: Any = config.http_protocol_class

            class Handed(base):  # type: ignore[misc]
                def connection_lost(self, exc: Exception | None) -> None:
                    super().connection_lost(exc)
                    _notify(channel, CLOSED)

            def protocol() -> asyncio.Protocol:
                return Handed(config=config, server_state=state, app_state=app_state)

            self._handed_protocol = protocol
            self._adopting: set[asyncio.Task[None]] = set()
            channel.setblocking(False)
            loop.add_reader(channel.fileno(), self._receive_connections)
            _notify(channel, READY)

        def _receive_connections(self) -> None:
            loop = asyncio.get_running_loop()
            while True:
                try:
                    message, fds, _flags, _address = socket.recv_fds(channel, 16, 4)
                except BlockingIOError:
                    return
                if not message and not fds:  # the parent is gone: stop like on SIGTERM
                    loop.remove_reader(channel.fileno())
                    self.should_exit = True
                    return
                for fd in fds:
                    task = loop.create_task(self._adopt(socket.socket(fileno=fd)))
                    self._adopting.add(task)
                    task.add_done_callback(self._adopting.discard)

        async def _adopt(self, sock: socket.socket) -> None:
            sock.setblocking(False)
            try:
                await asyncio.get_running_loop().connect_accepted_socket(
                    self._handed_protocol, sock, ssl=self.config.ssl
                )
            except OSError:  # the client left before the worker got to it
                sock.close()
                _notify(channel, CLOSED)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            with contextlib.suppress(ValueError, OSError):  # already removed, or closed
                asyncio.get_running_loop().remove_reader(channel.fileno())
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(APP, factory=True, log_level=log_level)
    HandedServer(config).run()


class _Dispatcher:
    """The parent's loop: accepts connections, hands each to a worker, reads the workers'
    notices; returns once every worker's channel has ended."""

    def __init__(
        self,
        listener: socket.socket,
        channels: list[socket.socket],
        on_lost_worker: Callable[[], None],
    ) -> None:
        self.listener: socket.socket | None = listener
        self.on_lost_worker = on_lost_worker
        self.channels = channels
        self.balancer = Balancer(len(channels))
        self.live = set(range(len(channels)))
        self.selector = selectors.DefaultSelector()
        self.listening = False
        self.stopping = False
        self.lost_worker = False
        listener.setblocking(False)
        for i, channel in enumerate(channels):
            channel.setblocking(False)
            self.selector.register(channel, selectors.EVENT_READ, i)

    def run(self) -> None:
        while self.live:
            for key, _events in self.selector.select(timeout=0.2):
                if key.data is None:
                    self._accept()
                else:
                    self._read(key.data)
            if self.stopping:
                self._stop_listening()

    def _accept(self) -> None:
        assert self.listener is not None
        for _ in range(64):  # then read the workers' notices again
            try:
                connection, _address = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as error:  # e.g. out of descriptors: the client is refused
                log.warning("accept failed: %s", error)
                return
            with connection:
                self._hand(connection)

    def _hand(self, connection: socket.socket) -> None:
        full: frozenset[int] = frozenset()
        while (worker := self.balancer.pick(exclude=full)) is not None:
            try:
                socket.send_fds(self.channels[worker], [CONNECTION], [connection.fileno()])
                return
            except BlockingIOError:  # its channel is full (a long stall): the next one
                self.balancer.closed(worker)
                full |= {worker}
            except OSError:  # that worker is going
                self.balancer.gone(worker)
                self._sync_listening()
        if full and self._hand_waiting(connection, min(full)):
            return
        log.warning("no API worker could take a connection; it was closed")

    def _hand_waiting(self, connection: socket.socket, worker: int) -> bool:
        """Every worker's channel is full: wait up to 5 s for one (new clients queue in the
        kernel meanwhile) rather than drop the connection at once."""
        channel = self.channels[worker]
        channel.settimeout(5)
        try:
            socket.send_fds(channel, [CONNECTION], [connection.fileno()])
            self.balancer.open[worker] += 1
            return True
        except OSError:
            return False
        finally:
            channel.setblocking(False)

    def _read(self, worker: int) -> None:
        channel = self.channels[worker]
        while True:
            try:
                message = channel.recv(16)
            except BlockingIOError:
                return
            except OSError:
                message = b""
            if not message:  # the worker ended
                self.selector.unregister(channel)
                channel.close()
                self.live.discard(worker)
                self.balancer.gone(worker)
                if not self.stopping:
                    self.lost_worker = True
                    self.stopping = True
                    self.on_lost_worker()  # the others are stopped; their channels end too
                self._sync_listening()
                return
            if message == READY:
                self.balancer.ready[worker] = True
                self._sync_listening()
            elif message == CLOSED:
                self.balancer.closed(worker)

    def _sync_listening(self) -> None:
        """Listen only while some worker can take a connection: until then clients wait in
        the kernel's queue, as they would for a worker's own socket."""
        want = not self.stopping and any(self.balancer.ready)
        if want and not self.listening and self.listener is not None:
            self.selector.register(self.listener, selectors.EVENT_READ, None)
            self.listening = True
        elif not want and self.listening and self.listener is not None:
            self.selector.unregister(self.listener)
            self.listening = False

    def _stop_listening(self) -> None:
        if self.listener is not None:
            self._sync_listening()
            self.listener.close()  # new clients are refused from now on
            self.listener = None


def serve(host: str, port: int, workers: int, log_level: str = "warning") -> None:
    """Runs the API in `workers` processes until SIGINT/SIGTERM (or a worker exits)."""
    import uvicorn

    if workers == 1:
        uvicorn.run(APP, factory=True, host=host, port=port, log_level=log_level)
        return
    try:
        listener = _listen(host, port)
    except OSError as error:  # a port in use fails here, at once
        sys.exit(f"error: cannot listen on {host}:{port}: {error.strerror or error}")
    context = multiprocessing.get_context("spawn")
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(workers)]
    processes = [
        context.Process(target=_worker, args=(theirs, log_level), name=f"kgrec-api-{i}")
        for i, (_ours, theirs) in enumerate(pairs)
    ]

    def terminate() -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn shuts down gracefully

    dispatcher = _Dispatcher(listener, [ours for ours, _theirs in pairs], terminate)

    def stop(signum: int, _frame: FrameType | None) -> None:
        dispatcher.stopping = True
        terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.start()
    for _ours, theirs in pairs:
        theirs.close()  # the worker holds its own copy; its end is the channel's end
    dispatcher.run()
    for process in processes:
        process.join(timeout=60)
    failed = [p for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
    if failed and dispatcher.lost_worker:
        sys.exit(f"API worker {failed[0].name} exited with code {failed[0].exitcode}")


def main(argv: list[str] | None = None) -> None:
    """`python -m api.workers HOST PORT WORKERS` (what `kgrec serve` runs)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        sys.exit("usage: python -m api.workers HOST PORT WORKERS")
    serve(args[0], int(args[1]), int(args[2]))


if __name__ == "__main__":
    main()
