"""The served-score drift sample: at most the configured lists a second feed it."""

from __future__ import annotations

from api.metrics import Metrics
from recommender.engine import PERSONAL, Engine
from tests.recommender.test_engine import snapshot


def test_drift_scores_are_sampled_per_second_and_all_kept_without_a_cap() -> None:
    snap = snapshot()
    items = Engine(snap).recommend("C0", k=2)
    assert items and items[0].strategy == PERSONAL
    capped = Metrics(drift_scores_max_per_s=1)
    for _ in range(5):
        capped.observe_scores(snap, "home", "C0", items)
    once = capped.served_scores.values("home", "v1")
    assert len(once) > 0
    every = Metrics()
    for _ in range(5):
        every.observe_scores(snap, "home", "C0", items)
    assert len(every.served_scores.values("home", "v1")) == 5 * len(once)
