"""PSI and its bins, computed by hand: identical distributions, a two-bin case, empty bins."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommender.drift import (
    EPSILON,
    ServedScores,
    binned,
    compare,
    decile_edges,
    psi,
    shares,
    status,
    top_k_affinities,
    top_level_categories,
    training_reference,
    worst,
)


def test_identical_distributions_have_no_drift() -> None:
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert psi([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0.0


def test_a_two_bin_case_by_hand() -> None:
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5) = 0.4 ln 1.8 + 0.4 ln 5
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * math.log(1.8) + 0.4 * math.log(5))
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.878890, abs=1e-6)
    # PSI is symmetric in its two sides.
    assert psi([0.9, 0.1], [0.5, 0.5]) == pytest.approx(psi([0.5, 0.5], [0.9, 0.1]))


def test_an_empty_bin_counts_as_epsilon() -> None:
    expected = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert psi([1.0, 0.0], [0.5, 0.5]) == pytest.approx(expected)
    assert math.isfinite(psi([1.0, 0.0], [0.0, 1.0]))


def test_bins_must_match() -> None:
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="same bins"):
        psi([], [])


def test_shares_over_named_bins() -> None:
    assert shares({"a": 3, "b": 1}, ["a", "b", "c"]) == [0.75, 0.25, 0.0]
    assert shares({}, ["a"]) == [0.0]


def test_deciles_put_a_tenth_of_the_reference_in_each_bin() -> None:
    sample = np.arange(1.0, 101.0)
    edges = decile_edges(sample)
    assert len(edges) == 9
    assert binned(sample, edges) == pytest.approx([0.1] * 10)
    # Everything above the top decile lands in the last bin; below the first, the first.
    assert binned([1000.0, 2000.0], edges)[-1] == 1.0
    assert binned([-5.0], edges)[0] == 1.0
    assert decile_edges([3.0, 3.0, 3.0]) == [3.0]  # ties merge into one edge
    with pytest.raises(ValueError, match="no scores"):
        decile_edges([])


def test_status_thresholds() -> None:
    assert status(0.05, warn=0.1, alert=0.25) == "ok"
    assert status(0.1, warn=0.1, alert=0.25) == "warn"
    assert status(0.3, warn=0.1, alert=0.25) == "alert"
    assert status(None, warn=0.1, alert=0.25) == "insufficient_data"
    assert worst(["ok", "alert", "warn"]) == "alert"
    assert worst(["insufficient_data", "ok"]) == "ok"
    few = compare(
        "x", ["a", "b"], [0.5, 0.5], [1.0, 0.0], 5, warn=0.1, alert=0.25, min_observations=10
    )
    assert few.psi is None and few.status == "insufficient_data"


def test_top_level_category_is_the_root_and_the_smallest_of_several() -> None:
    ids = ["food", "fruit", "apples", "toys"]
    subcategory_of = (np.array([1, 2]), np.array([0, 1]))  # fruit < food, apples < fruit
    in_category = (np.array([0, 1, 1, 2]), np.array([2, 3, 1, 3]))
    tops = top_level_categories(4, ids, in_category, subcategory_of)
    assert tops == ["food", "food", "toys", "(none)"]


def test_training_reference_counts_lines_and_bins_top_k_scores() -> None:
    customers = np.array([[1.0, 0.0], [0.0, 1.0]])
    products = np.array([[3.0, 0.0], [2.0, 0.0], [0.0, 5.0], [0.0, 1.0]])
    rows_c = np.array([0, 0, 1])
    rows_p = np.array([0, 2, 2])
    # Customer 0 bought products 0 and 2: their best other products score 2 and 0.
    values = top_k_affinities(customers, products, {0: np.array([0, 2])}, np.array([0]), k=2)
    assert sorted(values.tolist()) == [0.0, 2.0]
    reference = training_reference(
        product_rows=rows_p,
        customer_rows=rows_c,
        ts_ms=np.array([10, 20, 30]),
        top_category=["a", "a", "b", "b"],
        vectors=(customers, products),
    )
    mix = reference["interaction_mix"]
    assert mix["counts"] == {"a": 1, "b": 2} and (mix["from_ms"], mix["to_ms"]) == (10, 30)
    scores = reference["score_distribution"]
    assert scores["customers"] == 2 and scores["sample"] == 5  # 2 + 3 products not bought
    assert sum(scores["shares"]) == pytest.approx(1.0)
    assert (
        training_reference(
            product_rows=rows_p,
            customer_rows=rows_c,
            ts_ms=np.array([1, 2, 3]),
            top_category=["a"] * 4,
            vectors=None,
        )["score_distribution"]
        is None
    )


def test_served_scores_keep_the_latest_per_surface_and_version() -> None:
    served = ServedScores(kept=3)
    served.observe("home", "v1", [1.0, 2.0])
    served.observe("home", "v1", [3.0, 4.0])
    served.observe("email", "v2", [9.0])
    served.observe("home", None, [5.0])  # no model: nothing to compare
    assert served.values("home", "v1").tolist() == [2.0, 3.0, 4.0]
    assert served.surfaces("v1") == ["home"] and served.surfaces("v2") == ["email"]
    assert served.values("cart", "v1").size == 0
