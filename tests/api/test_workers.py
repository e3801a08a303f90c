"""Which worker gets a connection (`kgrec serve --workers N`): the balancing rule alone; the
processes themselves are tested over HTTP in test_app.py."""

from __future__ import annotations

from api.workers import Balancer


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
