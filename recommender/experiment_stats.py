"""The statistics of an A/B experiment report, on plain arrays (no Neo4j): per variant, each
metric with a 95% confidence interval, and each variant against the control with the
difference, its interval and a p-value from statsmodels.

The unit of randomisation is the customer (assignment hashes the customer id), so every tested
metric is per customer: the share of exposed customers who clicked a recommended item, added
anything to the cart, bought anything, and revenue per exposed customer (zeros included).
Per-list and per-item click rates are reported too but not tested: lists of one customer are
not independent trials, and a z-test over them would claim more certainty than the data hold.

Proportions: Wilson intervals per variant, a two-sample z-test (`proportions_ztest`) and a
Newcomb interval of the difference (`confint_proportions_2indep`). Revenue: t intervals and
Welch's t-test (`ttest_ind(usevar="unequal")`), which does not assume equal variances. With more
than one treatment the p-values are Holm-adjusted per metric (family-wise error at alpha), and
`significant` reads the adjusted value. `bench/experiments_sim.py` checks the false-alarm rate
and the power of exactly this function on simulated traffic.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

#: Tested metrics, in report order: name -> kind.
METRICS: dict[str, str] = {
    "click_through": "proportion",  # exposed customers who clicked a recommended item
    "add_to_cart": "proportion",  # exposed customers who added anything to the cart after
    "conversion": "proportion",  # exposed customers who bought anything after
    "revenue_per_customer": "mean",  # revenue after exposure per exposed customer
}


@dataclass(frozen=True)
class VariantOutcomes:
    """What the customers of one variant did after their first exposure (arrays are per
    customer, in the same order)."""

    name: str
    clicked: np.ndarray  # bool: clicked at least one item recommended to them in the experiment
    carted: np.ndarray  # bool
    converted: np.ndarray  # bool
    revenue: np.ndarray  # float, 0 when nothing bought
    lists: int = 0  # lists shown
    impressions: int = 0  # items shown
    clicks: int = 0  # clicks on shown items

    @property
    def customers(self) -> int:
        return len(self.revenue)

    def values(self, metric: str) -> np.ndarray:
        if metric == "click_through":
            return self.clicked
        if metric == "add_to_cart":
            return self.carted
        if metric == "conversion":
            return self.converted
        return self.revenue


@dataclass(frozen=True)
class Estimate:
    value: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Comparison:
    """A variant against the control on one metric."""

    difference: float | None  # variant - control
    ci_low: float | None
    ci_high: float | None
    relative_lift: float | None  # difference / control value
    p_value: float | None
    p_adjusted: float | None  # Holm over the treatments when there are several, else = p_value
    significant: bool
    test: str


@dataclass(frozen=True)
class VariantReport:
    name: str
    customers: int
    lists: int
    impressions: int
    clicks: int
    clicks_per_list: float | None
    item_click_rate: float | None
    metrics: dict[str, Estimate]
    vs_control: dict[str, Comparison] = field(default_factory=dict)  # empty for the control


@dataclass(frozen=True)
class StatsReport:
    control: str
    alpha: float
    variants: list[VariantReport]
    notes: list[str]


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else a / b


def _estimate(values: np.ndarray, kind: str, alpha: float) -> Estimate:
    n = len(values)
    if n == 0:
        return Estimate(None, None, None)
    if kind == "proportion":
        count = int(np.count_nonzero(values))
        low, high = proportion_confint(count, n, alpha=alpha, method="wilson")
        return Estimate(count / n, _finite(low), _finite(high))
    mean = float(np.mean(values))
    if n < 2:
        return Estimate(mean, None, None)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = DescrStatsW(values.astype(float)).tconfint_mean(alpha=alpha)
    return Estimate(mean, _finite(low), _finite(high))


def compare(treatment: np.ndarray, control: np.ndarray, kind: str, alpha: float) -> Comparison:
    """One metric of a treatment against the control: difference, its interval, p-value."""
    n1, n0 = len(treatment), len(control)
    if n1 < 2 or n0 < 2:
        return Comparison(None, None, None, None, None, None, False, "too few customers")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if kind == "proportion":
            c1, c0 = int(np.count_nonzero(treatment)), int(np.count_nonzero(control))
            p1, p0 = c1 / n1, c0 / n0
            low, high = confint_proportions_2indep(c1, n1, c0, n0, method="newcomb", alpha=alpha)
            pooled = (c1 + c0) / (n1 + n0)
            # Nobody (or everybody) in either group: no difference to see, the z statistic is 0/0.
            p_value = (
                1.0
                if pooled in (0.0, 1.0)
                else float(proportions_ztest([c1, c0], [n1, n0], alternative="two-sided")[1])
            )
            test = "two-proportion z-test (Newcomb interval)"
        else:
            x1, x0 = treatment.astype(float), control.astype(float)
            p1, p0 = float(np.mean(x1)), float(np.mean(x0))
            if np.var(x1) == 0 and np.var(x0) == 0:
                low = high = p1 - p0
                p_value = 1.0 if p1 == p0 else 0.0
            else:
                p_value = float(ttest_ind(x1, x0, usevar="unequal")[1])
                low, high = CompareMeans(DescrStatsW(x1), DescrStatsW(x0)).tconfint_diff(
                    alpha=alpha, usevar="unequal"
                )
            test = "Welch t-test"
    difference = p1 - p0
    return Comparison(
        difference=difference,
        ci_low=_finite(low),
        ci_high=_finite(high),
        relative_lift=_ratio(difference, p0),
        p_value=_finite(p_value),
        p_adjusted=_finite(p_value),
        significant=bool(math.isfinite(p_value) and p_value < alpha),
        test=test,
    )


def analyse(
    variants: Sequence[VariantOutcomes], *, control: str, alpha: float = 0.05
) -> StatsReport:
    """The report's numbers. `control` names the variant the others are compared to.

    Raises:
        ValueError: `control` is not one of the variants, or alpha is not in (0, 1).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    by_name = {v.name: v for v in variants}
    if control not in by_name:
        raise ValueError(f"control {control!r} is not a variant; variants: {sorted(by_name)}")
    base = by_name[control]
    treatments = [v for v in variants if v.name != control]
    comparisons: dict[str, dict[str, Comparison]] = {v.name: {} for v in treatments}
    for metric, kind in METRICS.items():
        found = {
            v.name: compare(v.values(metric), base.values(metric), kind, alpha) for v in treatments
        }
        if len(treatments) > 1:
            tested = [name for name, c in found.items() if c.p_value is not None]
            if tested:
                reject, adjusted, _, _ = multipletests(
                    [found[name].p_value for name in tested], alpha=alpha, method="holm"
                )
                for name, keep, p in zip(tested, reject, adjusted, strict=True):
                    c = found[name]
                    found[name] = Comparison(
                        c.difference,
                        c.ci_low,
                        c.ci_high,
                        c.relative_lift,
                        c.p_value,
                        float(p),
                        bool(keep),
                        c.test,
                    )
        for name, c in found.items():
            comparisons[name][metric] = c
    reports = [
        VariantReport(
            name=v.name,
            customers=v.customers,
            lists=v.lists,
            impressions=v.impressions,
            clicks=v.clicks,
            clicks_per_list=_ratio(v.clicks, v.lists),
            item_click_rate=_ratio(v.clicks, v.impressions),
            metrics={m: _estimate(v.values(m), kind, alpha) for m, kind in METRICS.items()},
            vs_control=comparisons.get(v.name, {}),
        )
        for v in variants
    ]
    confidence = f"{1 - alpha:.0%}"
    notes = [
        f"Intervals are {confidence}; tests are two-sided at alpha {alpha:g}, per customer "
        "(the unit of assignment). Clicks per list and per item are descriptive, not tested.",
        f"Each of the {len(METRICS)} metrics is tested on its own: with no real difference, "
        f"about {1 - (1 - alpha) ** len(METRICS):.0%} of experiments show at least one "
        "'significant' metric by chance. Decide the metric that picks the winner before the "
        "experiment starts, and its sample size.",
    ]
    if len(treatments) > 1:
        notes.append(
            f"{len(treatments)} variants are compared to {control!r}: p-values are "
            "Holm-adjusted per metric (p_adjusted), and `significant` uses the adjusted value."
        )
    small = [v.name for v in variants if v.customers < 100]
    if small:
        notes.append(
            f"fewer than 100 exposed customers in {', '.join(small)}: the intervals are wide and "
            "the z-test's normal approximation is rough; wait for more traffic"
        )
    return StatsReport(control=control, alpha=alpha, variants=reports, notes=notes)
