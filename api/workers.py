"""`kgrec serve --workers N`: N API processes, each with its own listening socket on the same
port (SO_REUSEPORT), so the kernel spreads connections over them.

uvicorn's own `workers` share one listening socket, and a burst of keep-alive connections can
all land on one process while the other idles (measured with 16 clients: 724 or 1,312 lists/s
from one run to the next). With one socket per process the kernel balances by connection.
If a worker dies, the others are stopped and the command exits non-zero, so the process
manager that runs it restarts the whole server.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import socket
import sys
from types import FrameType

APP = "api.app:create_app"


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP (with
    # proto 0 every answer waited for a delayed ACK: 48 ms p50, measured).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(host: str, port: int, log_level: str) -> None:
    import uvicorn

    config = uvicorn.Config(APP, factory=True, log_level=log_level)
    uvicorn.Server(config).run(sockets=[_listen(host, port)])


def serve(host: str, port: int, workers: int, log_level: str = "warning") -> None:
    """Runs the API in `workers` processes until SIGINT/SIGTERM (or a worker exits)."""
    import uvicorn

    if workers == 1:
        uvicorn.run(APP, factory=True, host=host, port=port, log_level=log_level)
        return
    _listen(host, port).close()  # a port in use fails here, with the OS's message, at once
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(host, port, log_level), name=f"kgrec-api-{i}")
        for i in range(workers)
    ]
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn shuts down gracefully

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.start()
    sentinels = [p.sentinel for p in processes]
    multiprocessing.connection.wait(sentinels)  # returns when any worker ends
    if not stopping:
        stop(signal.SIGTERM, None)
    for process in processes:
        process.join(timeout=60)
    failed = [p for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
    if failed and not stopping:
        sys.exit(f"API worker {failed[0].name} exited with code {failed[0].exitcode}")
