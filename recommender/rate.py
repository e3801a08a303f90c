"""A per-process cap on how often something cheap-to-skip happens (a token bucket): the
served-list write-back and the served-score drift sample use it so their cost stays bounded at
peak traffic."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateCap:
    """Lets at most `per_s` calls a second through, in bursts of up to as many (`per_s` 0: no
    cap). Thread-safe.

    Raises:
        ValueError: a negative rate.
    """

    def __init__(self, per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not per_s >= 0:
            raise ValueError(f"the rate cap must be >= 0 a second (0: no cap), got {per_s}")
        self.per_s = per_s
        self._clock = clock
        self._tokens = per_s
        self._refilled = clock()
        self._lock = threading.Lock()
        self.refused = 0

    def take(self) -> bool:
        """True when this call is within the cap (and counts against it)."""
        if self.per_s <= 0:
            return True
        with self._lock:
            now = self._clock()
            elapsed = max(now - self._refilled, 0.0)
            self._tokens = min(self.per_s, self._tokens + elapsed * self.per_s)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            self.refused += 1
            return False
