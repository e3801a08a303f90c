"""The A/B report's statistics and assignment, without a database: A/A p-values look uniform and
alarm no more than alpha, a true lift is found, the tests agree with scipy's own, Holm applies
with several variants; assignment is stable across processes and follows the split; bad
experiment specs name the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats as scipy_stats

from recommender.experiment_stats import VariantOutcomes, analyse, compare
from recommender.experiments import ExperimentSpec, Variant, assign, bucket


def customers(
    rng: np.random.Generator, name: str, n: int, click: float, convert: float = 0.03
) -> VariantOutcomes:
    clicked = rng.random(n) < click
    converted = rng.random(n) < convert
    revenue = np.where(converted, rng.lognormal(3.5, 0.8, n), 0.0)
    return VariantOutcomes(
        name=name,
        clicked=clicked,
        carted=rng.random(n) < 0.08,
        converted=converted,
        revenue=revenue,
        lists=n,
        impressions=10 * n,
        clicks=int(clicked.sum()),
    )


def test_aa_p_values_are_uniform_and_false_alarms_stay_near_alpha() -> None:
    rng = np.random.default_rng(20261205)
    reps, alpha = 300, 0.05
    p: dict[str, list[float]] = {"click_through": [], "conversion": [], "revenue_per_customer": []}
    for _ in range(reps):
        report = analyse(
            [customers(rng, "A", 2000, 0.05), customers(rng, "B", 2000, 0.05)], control="A"
        )
        for metric in p:
            value = report.variants[1].vs_control[metric].p_value
            assert value is not None
            p[metric].append(value)
    for metric, values in p.items():
        # A p-value that is constant, always small or always large fails this at once.
        assert scipy_stats.kstest(values, "uniform").pvalue > 0.001, metric
        rate = float(np.mean(np.array(values) < alpha))
        # alpha plus three binomial standard deviations (0.038 at 300 repetitions).
        assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps), (metric, rate)


def test_a_true_lift_is_detected_with_an_interval_around_it() -> None:
    rng = np.random.default_rng(5)
    report = analyse(
        [customers(rng, "control", 5000, 0.05), customers(rng, "lift", 5000, 0.08)],
        control="control",
    )
    control, lift = report.variants
    c = lift.vs_control["click_through"]
    assert c.significant and c.p_value is not None and c.p_value < 1e-6
    assert c.ci_low is not None and c.ci_high is not None
    assert c.ci_low < 0.03 < c.ci_high  # the true difference
    assert c.difference == pytest.approx(
        lift.metrics["click_through"].value - control.metrics["click_through"].value  # type: ignore[operator]
    )
    assert control.vs_control == {}
    est = control.metrics["click_through"]
    assert est.ci_low is not None and est.ci_high is not None
    assert est.ci_low < 0.05 < est.ci_high
    assert not any("Holm" in note for note in report.notes)  # one treatment: no adjustment


def test_the_tests_agree_with_an_independent_computation() -> None:
    rng = np.random.default_rng(9)
    a = rng.lognormal(1.0, 1.0, 400) * (rng.random(400) < 0.4)
    b = rng.lognormal(1.2, 1.5, 300) * (rng.random(300) < 0.4)
    welch = compare(b, a, "mean", 0.05)
    assert welch.p_value == pytest.approx(scipy_stats.ttest_ind(b, a, equal_var=False).pvalue)
    x, y = rng.random(800) < 0.11, rng.random(900) < 0.08
    z = compare(x, y, "proportion", 0.05)
    p1, p0 = x.mean(), y.mean()
    pooled = (x.sum() + y.sum()) / (len(x) + len(y))
    se = np.sqrt(pooled * (1 - pooled) * (1 / len(x) + 1 / len(y)))
    assert z.p_value == pytest.approx(2 * scipy_stats.norm.sf(abs(p1 - p0) / se))


def test_several_variants_are_holm_adjusted() -> None:
    rng = np.random.default_rng(3)
    report = analyse(
        [
            customers(rng, "A", 3000, 0.05),
            customers(rng, "B", 3000, 0.05),
            customers(rng, "C", 3000, 0.065),
        ],
        control="A",
    )
    ps = [v.vs_control["click_through"] for v in report.variants[1:]]
    for c in ps:
        assert c.p_value is not None and c.p_adjusted is not None
        assert c.p_adjusted >= c.p_value
    smallest = min(ps, key=lambda c: c.p_value or 1)
    assert smallest.p_adjusted == pytest.approx(min(1.0, 2 * (smallest.p_value or 0)))
    assert any("Holm" in note for note in report.notes)


def test_nothing_happening_is_not_a_difference() -> None:
    none = VariantOutcomes(
        "A", np.zeros(50, bool), np.zeros(50, bool), np.zeros(50, bool), np.zeros(50)
    )
    also = VariantOutcomes(
        "B", np.zeros(60, bool), np.zeros(60, bool), np.zeros(60, bool), np.zeros(60)
    )
    report = analyse([none, also], control="A")
    for c in report.variants[1].vs_control.values():
        assert c.p_value == 1.0 and not c.significant
    assert any("fewer than 100" in note for note in report.notes)
    with pytest.raises(ValueError, match="control 'Z' is not a variant"):
        analyse([none, also], control="Z")


def test_assignment_is_stable_across_processes_and_follows_the_split() -> None:
    variants = [
        Variant("a", 0.2, None, {}),
        Variant("b", 0.3, None, {}),
        Variant("c", 0.5, None, {}),
    ]
    ids = [f"C{i:06d}" for i in range(20_000)]
    here = [assign("exp-1", c, variants).name for c in ids[:200]]
    # Another interpreter with another hash seed must agree (Python's hash() would not).
    script = (
        "import json, sys\n"
        "from recommender.experiments import Variant, assign\n"
        "v = [Variant(n, w, None, {}) for n, w in (('a', 0.2), ('b', 0.3), ('c', 0.5))]\n"
        "print(json.dumps([assign('exp-1', f'C{i:06d}', v).name for i in range(200)]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(other.stdout) == here
    counts = {name: 0 for name in "abc"}
    for c in ids:
        counts[assign("exp-1", c, variants).name] += 1
    chi2 = scipy_stats.chisquare(list(counts.values()), [0.2 * 20_000, 0.3 * 20_000, 0.5 * 20_000])
    assert chi2.pvalue > 0.001, counts
    # Another experiment shuffles customers independently of this one.
    same = sum(bucket("exp-1", c) < 0.5 for c in ids[:2000] if bucket("exp-2", c) < 0.5)
    assert 400 < same < 600  # about a quarter of 2,000


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (
            {"variants": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.4}]},
            "",
            "sum to 1",
        ),
        (
            {"variants": [{"name": "a", "weight": 0.5}, {"name": "a", "weight": 0.5}]},
            "",
            "unique",
        ),
        (
            {
                "variants": [
                    {"name": "a", "weight": 0.5},
                    {"name": "b", "weight": 0.5, "ranking": {"diversty": 0.3}},
                ]
            },
            "variants.1",
            "unknown weight",
        ),
        ({"surfaces": ["product"]}, "surfaces.0", "'home', 'email' or 'cart'"),
        ({"control": "z"}, "", "not a variant"),
    ],
)
def test_bad_specs_name_the_field(change: dict[str, object], field: str, reason: str) -> None:
    spec = {
        "name": "t",
        "surfaces": ["home"],
        "variants": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}],
        **change,
    }
    with pytest.raises(ValidationError) as caught:
        ExperimentSpec.model_validate(spec)
    error = caught.value.errors()[0]
    assert ".".join(str(p) for p in error["loc"]).startswith(field)
    assert reason in error["msg"]
