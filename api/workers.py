"""`kgrec serve --workers N`: N API processes behind one listening socket. The parent process
holds the socket, accepts each connection and hands it (SCM_RIGHTS over a Unix socket) to the
worker with the fewest open connections, ties in turn; the requests then go straight to that
worker, the parent never sees them.

Why not let the kernel spread the connections: with SO_REUSEPORT each connection is hashed to
a worker, and 16 keep-alive connections split 13/3 in one of six benchmark runs (p99 43 ms at
1,000 lists/s against 8 ms with an 8/8 split: the busy worker saturated while the other
idled); with uvicorn's own `workers` sharing one socket, the first worker to wake accepts a
whole burst (724 or 1,312 lists/s from one run to the next). Node's cluster module hands
connections out from its primary process for the same reason.

A worker gets connections only once its application has started (it says so on its channel),
as the kernel only routes to a socket that listens; each closed connection is reported back,
so the counts stay right when clients come and go. If a worker dies, the others are stopped and
the command exits non-zero, so the process manager that runs it restarts the whole server;
if the parent dies, each worker sees the end of its channel and shuts down. The channels are
AF_UNIX SOCK_SEQPACKET sockets: Linux, as the deployment image.

`kgrec serve` runs this module in a fresh interpreter (`python -m api.workers HOST PORT N`):
the CLI process has every command's imports loaded (276 MiB: statsmodels, scipy, pandas, the
ingestion code), and spawned workers import the main module again, so serving from it cost
each process that much more. This module imports the standard library only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import sys
from collections.abc import Callable, Iterator
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


class _Notices:
    """A worker's notices to the parent. Closed connections that could not be reported (the
    channel full) are owed and sent with the next report, so the parent's count catches up."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.owed = 0

    def ready(self) -> None:
        with contextlib.suppress(OSError):  # a parent that is gone: the channel's end says so
            self.channel.send(READY)

    def closed(self) -> None:
        self.owed += 1
        report = min(self.owed, 4096)  # one byte each; the parent reads up to 4,096 at once
        try:
            self.channel.send(CLOSED * report)
            self.owed -= report
        except OSError:
            pass  # full (sent next time) or the parent is gone


def _worker(channel: socket.socket, log_level: str) -> None:
    import uvicorn

    notices = _Notices(channel)

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
                    notices.closed()

            def protocol() -> asyncio.Protocol:
                return Handed(config=config, server_state=state, app_state=app_state)

            self._handed_protocol = protocol
            self._adopting: set[asyncio.Task[None]] = set()
            channel.setblocking(False)
            loop.add_reader(channel.fileno(), self._receive_connections)
            notices.ready()

        def _receive_connections(self) -> None:
            loop = asyncio.get_running_loop()
            for message, fds in _received(channel):
                if not message and not fds:  # the parent is gone: stop like on SIGTERM
                    loop.remove_reader(channel.fileno())
                    self.should_exit = True
                    return
                if not fds:  # this process is out of descriptors: the kernel dropped it
                    log.warning("a connection was lost in transit (out of file descriptors?)")
                    notices.closed()
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
                notices.closed()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            with contextlib.suppress(ValueError, OSError):  # already removed, or closed
                asyncio.get_running_loop().remove_reader(channel.fileno())
            # Connections still on their way are closed (as a listener's queue would be);
            # those being adopted join the others, which uvicorn then closes when idle.
            for _message, fds in _received(channel):
                for fd in fds:
                    os.close(fd)
            if self._adopting:
                await asyncio.gather(*self._adopting, return_exceptions=True)
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(APP, factory=True, log_level=log_level)
    HandedServer(config).run()


def _received(channel: socket.socket) -> Iterator[tuple[bytes, list[int]]]:
    """The messages waiting on a non-blocking channel, each with the descriptors it carried;
    (b"", []) once the other end has closed."""
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(channel, 16, 4)
        except BlockingIOError:
            return
        except OSError:
            message, fds = b"", []
        yield message, fds
        if not message and not fds:
            return


class _Dispatcher:
    """The parent's loop: accepts connections, hands each to a worker, reads the workers'
    notices; returns once every worker's channel has ended. It never blocks on a worker: a
    connection no channel can take now waits in `pending` (and accepting pauses, so new
    clients wait in the kernel's queue) until one can."""

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
        self.pending: collections.deque[socket.socket] = collections.deque()
        self.selector = selectors.DefaultSelector()
        self.listening = False
        self.stopping = False
        self.lost: int | None = None  # the first worker that ended while nobody stopped it
        listener.setblocking(False)
        for i, channel in enumerate(channels):
            channel.setblocking(False)
            self.selector.register(channel, selectors.EVENT_READ, i)

    def run(self) -> None:
        while self.live:
            for key, _events in self.selector.select(timeout=0.01 if self.pending else 0.2):
                if key.data is None:
                    self._accept()
                else:
                    self._read(key.data)
            self._hand_pending()
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
            self.pending.append(connection)
            self._hand_pending()
            if self.pending:
                return

    def _hand_pending(self) -> None:
        while self.pending:
            if not self._hand(self.pending[0]):
                break
            self.pending.popleft().close()  # the worker holds its own copy now
        if self.stopping or not any(self.balancer.ready):
            while self.pending:  # nobody will take them: the clients see the connection close
                self.pending.popleft().close()
        self._sync_listening()

    def _hand(self, connection: socket.socket) -> bool:
        """True once a worker has the connection; False if no channel can take it now."""
        busy: frozenset[int] = frozenset()
        while (worker := self.balancer.pick(exclude=busy)) is not None:
            try:
                socket.send_fds(self.channels[worker], [CONNECTION], [connection.fileno()])
                return True
            except (BrokenPipeError, ConnectionResetError):  # that worker is going
                self.balancer.gone(worker)
            except OSError:  # its channel is full (or fds in flight hit a limit): not now
                self.balancer.closed(worker)
                busy |= {worker}
        return False

    def _read(self, worker: int) -> None:
        channel = self.channels[worker]
        while True:
            try:
                message = channel.recv(4096)
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
                    self.lost = worker
                    self.stopping = True
                    self.on_lost_worker()  # the others are stopped; their channels end too
                self._sync_listening()
                return
            if message == READY:
                self.balancer.ready[worker] = True
                self._sync_listening()
            elif message[:1] == CLOSED:  # one byte per closed connection
                for _ in message:
                    self.balancer.closed(worker)

    def _sync_listening(self) -> None:
        """Listen only while some worker can take a connection: until then clients wait in
        the kernel's queue, as they would for a worker's own socket."""
        want = not self.stopping and not self.pending and any(self.balancer.ready)
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
    if workers == 1:
        import uvicorn

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
    try:
        for process in processes:
            process.start()
        for _ours, theirs in pairs:
            theirs.close()  # the worker holds its own copy; its end is the channel's end
        if dispatcher.stopping:  # a signal while they started reached only the started ones
            terminate()
        dispatcher.run()
    finally:
        # However the loop ended (an error included), every worker is told: SIGTERM and the
        # end of its channel; none outlives this process.
        for ours, _theirs in pairs:
            ours.close()
        terminate()
        for process in processes:
            if process.pid is not None:  # started
                process.join(timeout=60)
    if dispatcher.lost is not None:
        lost = processes[dispatcher.lost]
        sys.exit(f"API worker {lost.name} exited with code {lost.exitcode}; the others stopped")


def main(argv: list[str] | None = None) -> None:
    """`python -m api.workers HOST PORT WORKERS` (what `kgrec serve` runs)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        sys.exit("usage: python -m api.workers HOST PORT WORKERS")
    serve(args[0], int(args[1]), int(args[2]))


if __name__ == "__main__":
    main()
