"""Benchmark: does the A/B report find a true lift, and does it stay quiet when there is none?

Run: .venv/bin/python -m bench.experiments_sim [--reps 1000 --customers 10000 --seed 7]

Simulated traffic goes through the report's statistics (`recommender.experiment_stats.analyse`,
the function `GET /v1/experiments/{id}/report` and `kgrec experiments report` call), customer
by customer: each exposed customer clicks a recommended item, adds to cart, and buys with the
variant's probabilities, and a buyer spends a log-normal amount.

1. A/A: both variants identical, `--reps` times. Each metric's false-alarm rate (p < alpha) must
   lie within its binomial noise around alpha, and the p-values must look uniform (KS test).
2. A/B/C A/A: three identical variants; with Holm's adjustment the chance that either treatment
   is called significant (family-wise) must stay at or under alpha.
3. Power: click-through 5% vs 6% (a 20% relative lift), `--customers` per variant: the share of
   repetitions that call it significant, beside the normal-approximation power.
4. Assignment: 200,000 customer ids hashed into 50/50 and 20/30/50 splits; chi-square test of the
   shares against the weights.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from recommender.experiment_stats import METRICS, VariantOutcomes, analyse
from recommender.experiments import Variant, assign


@dataclass(frozen=True)
class Behaviour:
    """What a variant's customers do after exposure."""

    click: float = 0.05
    cart: float = 0.08
    convert: float = 0.03
    spend_log_mean: float = 3.5  # a buyer's revenue: exp(N(mean, sigma)), about 45 on average
    spend_log_sigma: float = 0.8


def simulate(
    rng: np.random.Generator, name: str, customers: int, behaviour: Behaviour
) -> VariantOutcomes:
    """One variant's customers, drawn independently (the report's assumption, by design of
    the assignment: one variant per customer)."""
    clicked = rng.random(customers) < behaviour.click
    carted = rng.random(customers) < behaviour.cart
    converted = rng.random(customers) < behaviour.convert
    spend = rng.lognormal(behaviour.spend_log_mean, behaviour.spend_log_sigma, customers)
    revenue = np.where(converted, spend, 0.0)
    lists = rng.poisson(2.0, customers) + 1
    return VariantOutcomes(
        name=name,
        clicked=clicked,
        carted=carted,
        converted=converted,
        revenue=revenue,
        lists=int(lists.sum()),
        impressions=int(lists.sum() * 10),
        clicks=int(clicked.sum()),
    )


def binomial_band(rate: float, reps: int, z: float = 2.576) -> tuple[float, float]:
    """The range a false-alarm rate `rate` falls in over `reps` repetitions 99% of the time."""
    half = z * math.sqrt(rate * (1 - rate) / reps)
    return rate - half, rate + half


def aa(reps: int, customers: int, alpha: float, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    p_values: dict[str, list[float]] = {m: [] for m in METRICS}
    any_alarm = 0
    for _ in range(reps):
        variants = [simulate(rng, n, customers, Behaviour()) for n in ("A", "B")]
        report = analyse(variants, control="A", alpha=alpha)
        versus = report.variants[1].vs_control
        any_alarm += any(c.significant for c in versus.values())
        for metric, comparison in versus.items():
            assert comparison.p_value is not None
            p_values[metric].append(comparison.p_value)
    low, high = binomial_band(alpha, reps)
    per_metric = {}
    for metric, values in p_values.items():
        rate = float(np.mean(np.array(values) < alpha))
        per_metric[metric] = {
            "false_alarm_rate": rate,
            "within_binomial_band": bool(low <= rate <= high),
            "ks_uniform_p": float(scipy_stats.kstest(values, "uniform").pvalue),
        }
    return {
        "reps": reps,
        "customers_per_variant": customers,
        "alpha": alpha,
        "band_99": [round(low, 4), round(high, 4)],
        "metrics": per_metric,
        "any_metric_false_alarm_rate": any_alarm / reps,
    }


def aac(reps: int, customers: int, alpha: float, seed: int) -> dict[str, object]:
    """Three identical variants: family-wise false alarms per metric with Holm."""
    rng = np.random.default_rng(seed)
    alarms = dict.fromkeys(METRICS, 0)
    for _ in range(reps):
        variants = [simulate(rng, n, customers, Behaviour()) for n in ("A", "B", "C")]
        report = analyse(variants, control="A", alpha=alpha)
        for metric in METRICS:
            alarms[metric] += any(v.vs_control[metric].significant for v in report.variants[1:])
    return {
        "reps": reps,
        "customers_per_variant": customers,
        "familywise_false_alarm_rate": {m: a / reps for m, a in alarms.items()},
        "band_99": [round(x, 4) for x in binomial_band(alpha, reps)],
    }


def power(reps: int, customers: int, alpha: float, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    base, lifted = Behaviour(click=0.05), Behaviour(click=0.06)
    detected = 0
    lifts = []
    for _ in range(reps):
        variants = [
            simulate(rng, "control", customers, base),
            simulate(rng, "treatment", customers, lifted),
        ]
        comparison = analyse(variants, control="control", alpha=alpha).variants[1]
        c = comparison.vs_control["click_through"]
        detected += bool(c.significant and (c.difference or 0) > 0)
        lifts.append(c.difference or 0.0)
    se = math.sqrt((0.05 * 0.95 + 0.06 * 0.94) / customers)
    z = scipy_stats.norm.ppf(1 - alpha / 2)
    expected = float(scipy_stats.norm.cdf(0.01 / se - z))
    return {
        "reps": reps,
        "customers_per_variant": customers,
        "click_through": [0.05, 0.06],
        "power": detected / reps,
        "normal_approximation_power": round(expected, 4),
        "mean_estimated_difference": round(float(np.mean(lifts)), 5),
    }


def assignment(customers: int = 200_000) -> dict[str, object]:
    out = {}
    for label, weights in (("50/50", (0.5, 0.5)), ("20/30/50", (0.2, 0.3, 0.5))):
        variants = [Variant(f"v{i}", w, None, {}) for i, w in enumerate(weights)]
        counts = dict.fromkeys((v.name for v in variants), 0)
        for i in range(customers):
            counts[assign("exp-sim", f"C{i:07d}", variants).name] += 1
        observed = np.array(list(counts.values()))
        expected = np.array(weights) * customers
        out[label] = {
            "shares": [round(c / customers, 4) for c in observed],
            "chi2_p": float(scipy_stats.chisquare(observed, expected).pvalue),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=10_000, help="Per variant.")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", dest="json_out", help="Also write the figures here.")
    args = parser.parse_args()
    started = time.perf_counter()
    figures = {
        "aa": aa(args.reps, args.customers, args.alpha, args.seed),
        "aac": aac(args.reps, args.customers, args.alpha, args.seed + 1),
        "power": power(args.reps, args.customers, args.alpha, args.seed + 2),
        "assignment": assignment(),
        "seconds": 0.0,
    }
    figures["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
