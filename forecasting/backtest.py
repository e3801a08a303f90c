"""Rolling-origin backtests: train on everything up to a cutoff, forecast a later window.

The splitter is the one guard against leakage: every training period ends strictly before
the first period forecast, with an optional gap (the Dominick's protocol forecasts weeks T+2
and T+3 from data up to week T). `Split.check` enforces it for any data it is given.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


class LeakageError(AssertionError):
    """A forecast would see data from its own future."""


@dataclass(frozen=True)
class Split:
    cutoff: int  # last period the model may see
    horizons: tuple[int, ...]  # periods after the cutoff to forecast, e.g. (2, 3)

    @property
    def test_periods(self) -> tuple[int, ...]:
        return tuple(self.cutoff + h for h in self.horizons)

    def train_mask(self, periods: np.ndarray) -> np.ndarray:
        return np.asarray(periods) <= self.cutoff

    def test_mask(self, periods: np.ndarray) -> np.ndarray:
        return np.isin(np.asarray(periods), self.test_periods)

    def check(self, train_periods: np.ndarray, test_periods: np.ndarray) -> None:
        """Raises LeakageError if any training period is not before every test period."""
        if len(train_periods) and len(test_periods):
            latest, first = np.max(train_periods), np.min(test_periods)
            if latest >= first or latest > self.cutoff:
                raise LeakageError(
                    f"training data reaches period {latest} but the forecast starts at {first} "
                    f"(cutoff {self.cutoff})"
                )


def rolling_origin(cutoffs: Sequence[int], horizons: Sequence[int]) -> Iterator[Split]:
    """One split per cutoff; horizons must be positive (a forecast is always of the future)."""
    if not horizons or min(horizons) < 1:
        raise ValueError("horizons must be positive periods after the cutoff")
    for cutoff in cutoffs:
        yield Split(int(cutoff), tuple(int(h) for h in horizons))


def mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute percentage error, in percent, over actual values above zero."""
    actual, forecast = np.asarray(actual, float), np.asarray(forecast, float)
    keep = actual > 0
    return float(np.mean(np.abs(forecast[keep] - actual[keep]) / actual[keep]) * 100)


def mase(actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int) -> float:
    """Mean absolute scaled error against the in-sample seasonal naive forecast."""
    history = np.asarray(history, float)
    scale = np.mean(np.abs(history[season:] - history[:-season])) if len(history) > season else 0
    if not scale:
        return float("nan")
    return float(np.mean(np.abs(np.asarray(forecast) - np.asarray(actual))) / scale)
