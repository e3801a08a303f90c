"""The served-list write-back's sampling and per-second cap (no graph needed: nothing is
flushed)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from recommender.rate import RateCap
from recommender.served import ServedItem, ServedLog

ITEMS = [ServedItem("P1", 1, "personal"), ServedItem("P2", 2, "personal")]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def log(max_per_s: float, clock: Clock, sample_rate: float = 1.0) -> ServedLog:
    return ServedLog(
        cast(Any, None),
        database="neo4j",
        sample_rate=sample_rate,
        max_per_s=max_per_s,
        clock=clock,
        seed=1,
    )


def test_the_cap_bounds_sampled_lists_per_second_and_refills() -> None:
    clock = Clock()
    served = log(5, clock)
    kept = [served.record(f"C{i}", "home", "v1", ITEMS) for i in range(12)]
    assert kept == [True] * 5 + [False] * 7
    stats = served.stats()
    assert (stats.recorded, stats.capped, stats.queued) == (5, 7, 5)
    clock.now += 0.4  # two more tokens
    assert [served.record("C", "home", "v1", ITEMS) for _ in range(3)] == [True, True, False]
    clock.now += 10  # a full bucket again, never more than one second's worth
    assert sum(served.record("C", "home", "v1", ITEMS) for _ in range(9)) == 5


def test_experiment_lists_are_never_capped_nor_sampled_out() -> None:
    clock = Clock()
    served = log(1, clock, sample_rate=0.0)
    assert not served.record("C", "home", "v1", ITEMS)  # sampled out
    assert all(
        served.record("C", "home", "v1", ITEMS, experiment_id="E1", variant="a") for _ in range(5)
    )
    assert served.stats().capped == 0 and served.stats().queued == 5


def test_no_cap_keeps_every_sampled_list() -> None:
    served = log(0, Clock())
    assert all(served.record("C", "home", "v1", ITEMS) for _ in range(1_000))
    with pytest.raises(ValueError, match="max_per_s"):
        log(-1, Clock())


def test_rate_cap_refuses_past_its_rate_and_counts_refusals() -> None:
    clock = Clock()
    cap = RateCap(2, clock)
    assert [cap.take() for _ in range(4)] == [True, True, False, False]
    assert cap.refused == 2
    clock.now += 0.5
    assert [cap.take() for _ in range(2)] == [True, False]
    assert all(RateCap(0, clock).take() for _ in range(100))
    with pytest.raises(ValueError, match="rate cap"):
        RateCap(-0.5, clock)
