"""Daily demand derived from orders: its regressors and a pooled regression across products.

Regressors of a product's day, all known ahead of the day they describe:
- the discount of the best promotion running that day for the product (directly, through its
  category or its brand), as a fraction: promotions are planned, so their start and end dates
  are in the graph before they run, and a forecast sees the ones scheduled in its horizon;
- the day of the week (six indicators, Monday the reference).

`PooledDailyRegression` fits one least-squares regression across every product's series at a
cutoff: log(1 + units) on the promotion discount, the day of the week and yearly Fourier terms per
top-level category (products of a department share their season), with each series' own
level removed by demeaning (the "within" estimator). A product with a few weeks of history
borrows the promotion, weekday and season effects of the whole shop and needs only its level
from its own days, which is what makes it the model for short and noisy series. The fit
accumulates the normal equations series by series, so memory does not grow with the shop (a
test checks the coefficients against statsmodels OLS on the stacked rows).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

import numpy as np
from scipy import stats
from statsmodels.tools.sm_exceptions import SingularMatrixWarning

Forecast = dict[str, np.ndarray]

YEAR_DAYS = 365.25


def promotion_discounts(
    promotions: Iterable[tuple[str, date, date, float]], origin: date, days: int
) -> dict[str, np.ndarray]:
    """Per product, the discount fraction of the best promotion running on each day
    `origin + i` for i < `days`. `promotions` holds (product_id, first day, last day inclusive,
    discount in percent); days outside the window are ignored."""
    out: dict[str, np.ndarray] = {}
    for product_id, first, last, pct in promotions:
        lo = max((first - origin).days, 0)
        hi = min((last - origin).days + 1, days)
        if hi <= lo or pct is None:
            continue
        row = out.setdefault(product_id, np.zeros(days))
        row[lo:hi] = np.maximum(row[lo:hi], float(pct) / 100)
    return out


def calendar_exog(origin: date, start: int, length: int, discount: np.ndarray | None) -> np.ndarray:
    """The regressors of days `start .. start + length - 1` after `origin`: the promotion
    discount and six day-of-week indicators."""
    weekday = (np.arange(start, start + length) + origin.weekday()) % 7
    columns = [
        np.zeros(length) if discount is None else discount[start : start + length],
        *[(weekday == d).astype(float) for d in range(1, 7)],
    ]
    return np.column_stack(columns)


@dataclass
class DailyPanel:
    """Every product's daily series on one calendar: day 0 is `origin`, every series ends on
    the same last day `end - 1`, and series `p` starts on day `starts[p]`."""

    origin: date
    series: dict[str, np.ndarray]
    starts: dict[str, int]
    discounts: dict[str, np.ndarray] = field(default_factory=dict)  # covers the horizon too
    groups: dict[str, str] = field(default_factory=dict)  # product -> top-level category

    @cached_property
    def end(self) -> int:
        """One past the last day of every series (computed once: series do not change)."""
        return max((self.starts[p] + len(y) for p, y in self.series.items()), default=0)

    def exog(self, product_id: str, horizon: int) -> np.ndarray:
        """The series' regressors from its first day to `horizon` days past its last."""
        start = self.starts[product_id]
        length = len(self.series[product_id]) + horizon
        return calendar_exog(self.origin, start, length, self._discount(product_id, horizon))

    def _discount(self, product_id: str, horizon: int) -> np.ndarray | None:
        found = self.discounts.get(product_id)
        if found is None:
            return None
        need = self.end + horizon
        return found if len(found) >= need else np.pad(found, (0, need - len(found)))

    @classmethod
    def from_days(
        cls,
        sold: Mapping[str, Mapping[date, float]],
        last_day: date,
        promotions: Iterable[tuple[str, date, date, float]] = (),
        groups: Mapping[str, str] | None = None,
        horizon: int = 0,
    ) -> DailyPanel:
        """Explicit-zero daily series from units sold per product and day, each running from
        the product's first sale to `last_day`."""
        if not sold:
            return cls(last_day, {}, {})
        firsts = {p: min(days) for p, days in sold.items() if days}
        origin = min(firsts.values())
        series: dict[str, np.ndarray] = {}
        starts: dict[str, int] = {}
        for product_id, days in sold.items():
            if not days:
                continue
            first = firsts[product_id]
            values = np.zeros((last_day - first).days + 1)
            for day, units in days.items():
                values[(day - first).days] = units
            series[product_id] = values
            starts[product_id] = (first - origin).days
        total = (last_day - origin).days + 1 + horizon
        return cls(
            origin,
            series,
            starts,
            promotion_discounts(promotions, origin, total),
            dict(groups or {}),
        )


class PooledDailyRegression:
    """One OLS across every series of a `DailyPanel` at a cutoff; see the module's docstring.
    Intervals are log-normal in 1 + units, with each series' residual variance shrunk towards
    the pooled one (`shrink` days of the pooled variance)."""

    alias = "PooledDailyRegression"

    def __init__(self, window: int = 365, fourier: int = 2, shrink: float = 28.0) -> None:
        self.window = window
        self.fourier = fourier
        self.shrink = shrink

    def _features(self, panel: DailyPanel, product_id: str, days: np.ndarray) -> np.ndarray:
        discount = panel.discounts.get(product_id)
        promo = np.zeros(len(days)) if discount is None else _take(discount, days)
        weekday = (days + panel.origin.weekday()) % 7
        columns = [promo, *[(weekday == d).astype(float) for d in range(1, 7)]]
        group = self._group_index.get(panel.groups.get(product_id, ""), 0)
        day_of_year = (days + panel.origin.timetuple().tm_yday - 1) % YEAR_DAYS
        for g in range(len(self._group_index) or 1):
            on = float(g == group)
            for k in range(1, self.fourier + 1):
                angle = 2 * np.pi * k * day_of_year / YEAR_DAYS
                columns += [on * np.sin(angle), on * np.cos(angle)]
        return np.column_stack(columns)

    def forecast(
        self, panel: DailyPanel, cutoff: int, horizon: int, level: tuple[int, ...] = ()
    ) -> dict[str, Forecast]:
        """Fits on every series' days before calendar day `cutoff` (at most `window` of them)
        and forecasts days `cutoff .. cutoff + horizon - 1` of each series that has a day
        before the cutoff."""
        self._group_index = {g: i for i, g in enumerate(sorted(set(panel.groups.values())))}
        fitted: dict[str, tuple[np.ndarray, float, np.ndarray]] = {}
        xtx: np.ndarray | None = None
        xty: np.ndarray | None = None
        rows = 0
        for product_id, y in panel.series.items():
            start = panel.starts[product_id]
            lo = max(start, cutoff - self.window)
            if cutoff - lo < 2:
                continue
            days = np.arange(lo, cutoff)
            target = np.log1p(y[days - start])
            x = self._features(panel, product_id, days)
            x_mean, y_mean = x.mean(axis=0), float(target.mean())
            xd, yd = x - x_mean, target - y_mean
            xtx = xd.T @ xd if xtx is None else xtx + xd.T @ xd
            xty = xd.T @ yd if xty is None else xty + xd.T @ yd
            rows += len(days)
            fitted[product_id] = (x_mean, y_mean, days)
        if xtx is None or xty is None:
            return {}
        with warnings.catch_warnings():
            # A regressor that never varies (no promotion yet) is a zero column: no weight.
            warnings.simplefilter("ignore", SingularMatrixWarning)
            beta = np.linalg.pinv(xtx) @ xty
        self.coefficients = beta
        # Second pass: residual variance, pooled and per series.
        residual: dict[str, tuple[float, int]] = {}
        total = 0.0
        for product_id, (x_mean, y_mean, days) in fitted.items():
            y, start = panel.series[product_id], panel.starts[product_id]
            target = np.log1p(y[days - start]) - y_mean
            error = target - (self._features(panel, product_id, days) - x_mean) @ beta
            sse = float(error @ error)
            residual[product_id] = (sse, len(days))
            total += sse
        dof = max(rows - len(fitted) - len(beta), 1)
        pooled_variance = total / dof
        self.residual_variance = pooled_variance
        out: dict[str, Forecast] = {}
        ahead = np.arange(cutoff, cutoff + horizon)
        for product_id, (x_mean, y_mean, _) in fitted.items():
            mu = y_mean + (self._features(panel, product_id, ahead) - x_mean) @ beta
            sse, n = residual[product_id]
            variance = (sse + self.shrink * pooled_variance) / (n + self.shrink)
            forecast: Forecast = {self.alias: np.maximum(np.expm1(mu), 0.0)}
            for lv in level:
                z = stats.norm.ppf(0.5 + lv / 200) * np.sqrt(variance)
                forecast[f"{self.alias}-lo-{lv}"] = np.maximum(np.expm1(mu - z), 0.0)
                forecast[f"{self.alias}-hi-{lv}"] = np.maximum(np.expm1(mu + z), 0.0)
            out[product_id] = forecast
        return out


def _take(values: np.ndarray, days: np.ndarray) -> np.ndarray:
    """`values[days]`, zero past the end."""
    out = np.zeros(len(days))
    inside = days < len(values)
    out[inside] = values[days[inside]]
    return out
