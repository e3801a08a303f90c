"""Temporal split: validation and test are the latest periods; training is everything before.

The model only ever receives `training_view(...)`: a snapshot whose interactions all lie before
the cut-off. Anything a model derives (popularity, co-purchase similarity, embeddings) is
therefore computed from the past only. `assert_no_leakage` re-checks it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gnn.snapshot import GraphSnapshot

DAY_MS = 86_400_000


class LeakageError(AssertionError):
    """An interaction at or after the cut-off reached training."""


@dataclass(frozen=True)
class TemporalSplit:
    val_start_ms: int
    test_start_ms: int
    end_ms: int
    train: np.ndarray  # boolean masks over the snapshot's interactions
    val: np.ndarray
    test: np.ndarray

    def describe(self) -> dict[str, int]:
        return {
            "val_start_ms": self.val_start_ms,
            "test_start_ms": self.test_start_ms,
            "end_ms": self.end_ms,
            "train_interactions": int(self.train.sum()),
            "val_interactions": int(self.val.sum()),
            "test_interactions": int(self.test.sum()),
        }


def temporal_split(snapshot: GraphSnapshot, *, val_days: int, test_days: int) -> TemporalSplit:
    """Cuts at whole days (UTC) counted back from the day after the last interaction.

    Raises:
        ValueError: no interactions, or the periods leave nothing to train on.
    """
    if len(snapshot.ts_ms) == 0:
        raise ValueError("the graph holds no order lines: nothing to train or evaluate on")
    if val_days < 1 or test_days < 0:
        raise ValueError("val_days must be at least 1 and test_days at least 0")
    end = (int(snapshot.ts_ms.max()) // DAY_MS + 1) * DAY_MS
    test_start = end - test_days * DAY_MS
    val_start = test_start - val_days * DAY_MS
    ts = snapshot.ts_ms
    train = ts < val_start
    if not train.any():
        first = int(ts.min()) // DAY_MS
        span = end // DAY_MS - first
        raise ValueError(
            f"the validation ({val_days} days) and test ({test_days} days) periods cover all "
            f"{span} days of order history: nothing is left to train on; use shorter periods"
        )
    return TemporalSplit(
        val_start_ms=val_start,
        test_start_ms=test_start,
        end_ms=end,
        train=train,
        val=(ts >= val_start) & (ts < test_start),
        test=ts >= test_start,
    )


def training_view(snapshot: GraphSnapshot, before_ms: int) -> GraphSnapshot:
    """The snapshot with only the order lines and events strictly before `before_ms`."""
    keep = snapshot.ts_ms < before_ms
    events = snapshot.event_ts_ms < before_ms
    view = replace(
        snapshot,
        customer=snapshot.customer[keep],
        product=snapshot.product[keep],
        ts_ms=snapshot.ts_ms[keep],
        quantity=snapshot.quantity[keep],
        event_customer=snapshot.event_customer[events],
        event_product=snapshot.event_product[events],
        event_kind=snapshot.event_kind[events],
        event_ts_ms=snapshot.event_ts_ms[events],
    )
    assert_no_leakage(view, before_ms)
    return view


def assert_no_leakage(view: GraphSnapshot, before_ms: int) -> None:
    for what, times in (("an order line", view.ts_ms), ("an event", view.event_ts_ms)):
        if len(times) and int(times.max()) >= before_ms:
            raise LeakageError(
                f"{what} at {int(times.max())} ms reached training (cut-off {before_ms} ms)"
            )
