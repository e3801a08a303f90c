"""Metric functions against small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gnn import metrics


def test_one_target_at_rank_two() -> None:
    top = np.array([[3, 1, 2]])
    hits = metrics.hit_matrix(top, [np.array([1])])
    assert hits.tolist() == [[False, True, False]]
    sizes = np.array([1])
    assert metrics.recall_at(hits, sizes, 1)[0] == 0.0
    assert metrics.recall_at(hits, sizes, 3)[0] == 1.0
    # DCG = 1/log2(3); IDCG = 1/log2(2) = 1.
    assert metrics.ndcg_at(hits, sizes, 3)[0] == pytest.approx(1 / math.log2(3))
    assert metrics.hit_rate_at(hits, 1)[0] == 0.0
    assert metrics.hit_rate_at(hits, 2)[0] == 1.0
    assert metrics.mrr_at(hits, 3)[0] == pytest.approx(0.5)
    assert metrics.mrr_at(hits, 1)[0] == 0.0


def test_two_targets_and_a_miss() -> None:
    top = np.array([[3, 1, 2], [7, 8, 9]])
    targets = [np.array([3, 2]), np.array([4])]
    hits = metrics.hit_matrix(top, targets)
    sizes = np.array([2, 1])
    # User 0: hits at ranks 0 and 2: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3).
    expected = 1.5 / (1 + 1 / math.log2(3))
    ndcg = metrics.ndcg_at(hits, sizes, 3)
    assert ndcg[0] == pytest.approx(expected)
    assert ndcg[1] == 0.0
    assert metrics.recall_at(hits, sizes, 2).tolist() == [0.5, 0.0]
    assert metrics.recall_at(hits, sizes, 3).tolist() == [1.0, 0.0]
    assert metrics.mrr_at(hits, 3).tolist() == [1.0, 0.0]
    # With K = 1 the ideal list holds one hit, so a hit at rank 0 is a perfect score.
    assert metrics.ndcg_at(hits, sizes, 1)[0] == pytest.approx(1.0)


def test_catalogue_metrics() -> None:
    top = np.array([[0, 1], [1, 2]])
    assert metrics.coverage(top, 10) == pytest.approx(0.3)
    share = np.array([0.5, 0.25, 0.125, 0.0])
    # Self-information: -log2(0.5) = 1, -log2(0.25) = 2, -log2(0.125) = 3.
    assert metrics.novelty(top, share).tolist() == [1.5, 2.5]
    unit = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # Orthogonal pair: distance 1; identical pair: distance 0.
    assert metrics.intra_list_diversity(np.array([[0, 1], [0, 2]]), unit).tolist() == [1.0, 0.0]
    three = metrics.intra_list_diversity(np.array([[0, 1, 2]]), unit)
    # Pairs (0,1)=1, (0,2)=0, (1,2)=1: mean distance 2/3.
    assert three[0] == pytest.approx(2 / 3)


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_data() -> None:
    rng = np.random.default_rng(1)
    small = rng.random(50)
    large = rng.random(5000)
    value, low, high = metrics.bootstrap_mean(small, rounds=500)
    assert low < value < high
    _, low_l, high_l = metrics.bootstrap_mean(large, rounds=500)
    assert high_l - low_l < (high - low) / 3
    assert metrics.bootstrap_mean(np.full(20, 0.25), rounds=100) == (0.25, 0.25, 0.25)


def test_no_bootstrap_rounds_gives_the_mean_without_an_interval() -> None:
    mean, low, high = metrics.bootstrap_mean(np.array([0.0, 1.0, 1.0, 0.0]), rounds=0)
    assert mean == 0.5 and np.isnan(low) and np.isnan(high)
