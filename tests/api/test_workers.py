"""Which worker gets a connection (`kgrec serve --workers N`): the balancing rule alone; the
processes themselves are tested over HTTP in test_app.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from api.workers import CONNECTION, READY, Balancer, _Dispatcher, _listen, _Notices


def test_connections_go_to_the_fewest_open_ties_in_turn() -> None:
    balancer = Balancer(3)
    balancer.ready = [True, True, True]
    assert [balancer.pick() for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert balancer.open == [3, 2, 2]
    balancer.closed(0)
    balancer.closed(0)
    assert balancer.pick() == 0  # 1 open against 2 and 2
    assert balancer.pick() == 1  # all at 2: the turn after the last pick (0)


def test_only_ready_workers_get_connections() -> None:
    balancer = Balancer(2)
    assert balancer.pick() is None
    balancer.ready[1] = True
    assert [balancer.pick() for _ in range(3)] == [1, 1, 1]
    balancer.ready[0] = True
    assert [balancer.pick() for _ in range(4)] == [0, 0, 0, 1]  # 0 catches up first


def test_a_full_worker_is_skipped_and_a_gone_one_forgotten() -> None:
    balancer = Balancer(2)
    balancer.ready = [True, True]
    assert balancer.pick(exclude=frozenset({0})) == 1
    assert balancer.pick() == 0
    balancer.gone(0)
    assert balancer.open == [0, 1]
    assert [balancer.pick() for _ in range(2)] == [1, 1]
    balancer.closed(0)  # a late notice from the gone worker: never below zero
    assert balancer.open[0] == 0


def test_a_port_in_use_is_one_clear_error() -> None:
    """`kgrec serve` on a taken port: exit 1 naming the address, no traceback (the dispatcher
    listens before any worker starts)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "api.workers", "127.0.0.1", str(port), "2"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_dispatcher_loads_no_application_code() -> None:
    """The parent of `kgrec serve --workers N` (and each worker's copy of the main module)
    imports the standard library only: the CLI's imports cost 276 MiB per process."""
    code = (
        "import sys, api.workers; "
        "heavy = {'numpy', 'pandas', 'neo4j', 'fastapi', 'uvicorn', 'statsmodels'}; "
        "sys.exit(sorted(heavy & set(sys.modules)) or 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_a_full_channel_makes_a_connection_wait_not_drop() -> None:
    """A worker whose channel is full (stalled): the parent keeps the connection and stops
    accepting (new clients wait in the kernel's queue) until the channel drains, then hands
    the very connection over."""
    listener = _listen("127.0.0.1", 0)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dispatcher = _Dispatcher(listener, [ours], on_lost_worker=lambda: None)
    theirs.send(READY)
    dispatcher._read(0)
    assert dispatcher.listening
    filler = 0
    while True:  # stall the worker: its channel fills up
        try:
            ours.send(b"f")
            filler += 1
        except BlockingIOError:
            break
    with socket.create_connection(listener.getsockname()) as client:
        time.sleep(0.1)  # the connection reaches the listener's queue
        dispatcher._accept()
        assert len(dispatcher.pending) == 1 and not dispatcher.listening
        for _ in range(filler):  # the worker catches up
            theirs.recv(16)
        dispatcher._hand_pending()
        assert not dispatcher.pending and dispatcher.listening
        message, fds, _flags, _address = socket.recv_fds(theirs, 16, 4)
        assert message == CONNECTION and len(fds) == 1
        with socket.socket(fileno=fds[0]) as handed:
            client.sendall(b"ping")
            assert handed.recv(4) == b"ping"  # the same client's connection
    assert dispatcher.balancer.open == [1]
    for sock in (listener, ours, theirs):
        sock.close()


def test_closed_connections_owed_are_reported_together() -> None:
    """A worker that could not report closes (its channel full) reports them with the next
    one, and the parent counts every byte."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener = _listen("127.0.0.1", 0)
    dispatcher = _Dispatcher(listener, [ours], on_lost_worker=lambda: None)
    dispatcher.balancer.ready = [True]
    for _ in range(5):
        dispatcher.balancer.pick()
    notices = _Notices(theirs)
    notices.owed = 2  # two that found the channel full
    notices.closed()
    assert notices.owed == 0
    dispatcher._read(0)
    assert dispatcher.balancer.open == [2]
    for sock in (listener, ours, theirs):
        sock.close()
