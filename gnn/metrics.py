"""Ranking metrics per user, catalogue metrics, and bootstrap confidence intervals.

Definitions (K is the cut-off; `hits[r]` is 1 when the item at rank r, from 0, is a target):
- Recall@K = hits in the top K / number of targets.
- NDCG@K = sum(hits[r] / log2(r + 2)) / IDCG, IDCG the same sum for min(targets, K) hits.
- HitRate@K = 1 if any target is in the top K.
- MRR@K = 1 / (rank of the first target + 1) within the top K, else 0.
- Coverage@K = distinct products in all top-K lists / products in the catalogue.
- Novelty@K = mean self-information -log2(share of training customers who bought the item).
- Intra-list diversity@K = mean pairwise cosine distance of the items' content vectors.
"""

from __future__ import annotations

import numpy as np


def hit_matrix(top: np.ndarray, targets: list[np.ndarray]) -> np.ndarray:
    """[users, K] booleans: is the item at each rank one of the user's targets."""
    hits = np.zeros(top.shape, dtype=bool)
    for row, wanted in enumerate(targets):
        hits[row] = np.isin(top[row], wanted)
    return hits


def recall_at(hits: np.ndarray, n_targets: np.ndarray, k: int) -> np.ndarray:
    return hits[:, :k].sum(axis=1) / np.maximum(n_targets, 1)


def ndcg_at(hits: np.ndarray, n_targets: np.ndarray, k: int) -> np.ndarray:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * discounts).sum(axis=1)
    ideal_counts = np.minimum(n_targets, k)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_counts]
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def hit_rate_at(hits: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(hits[:, :k].any(axis=1), dtype=np.float64)


def mrr_at(hits: np.ndarray, k: int) -> np.ndarray:
    first = hits[:, :k].argmax(axis=1)
    found = hits[:, :k].any(axis=1)
    return np.where(found, 1.0 / (first + 1), 0.0)


def coverage(top: np.ndarray, n_products: int) -> float:
    return len(np.unique(top)) / n_products if n_products else 0.0


def novelty(top: np.ndarray, buyer_share: np.ndarray) -> np.ndarray:
    """Mean self-information of each list; `buyer_share` per product, zeros allowed."""
    floor = buyer_share[buyer_share > 0].min() if (buyer_share > 0).any() else 1.0
    information = -np.log2(np.maximum(buyer_share, floor))
    return information[top].mean(axis=1)


def intra_list_diversity(top: np.ndarray, unit_vectors: np.ndarray) -> np.ndarray:
    """Mean pairwise cosine distance within each list; `unit_vectors` are L2-normalised rows."""
    k = top.shape[1]
    if k < 2:
        return np.zeros(len(top))
    out = np.empty(len(top))
    for start in range(0, len(top), 4096):
        block = unit_vectors[top[start : start + 4096]]  # [b, k, f]
        gram = np.einsum("bif,bjf->bij", block, block)
        pairs = (gram.sum(axis=(1, 2)) - np.trace(gram, axis1=1, axis2=2)) / (k * (k - 1))
        out[start : start + 4096] = 1.0 - pairs
    return out


def bootstrap_mean(
    values: np.ndarray, *, rounds: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean and a percentile bootstrap interval over users (resampled with replacement)."""
    if len(values) == 0:
        return (float("nan"), float("nan"), float("nan"))
    if rounds < 1:  # no interval asked for
        return (float(values.mean()), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.empty(rounds)
    for start in range(0, rounds, 100):
        stop = min(start + 100, rounds)
        picks = rng.integers(0, len(values), (stop - start, len(values)))
        means[start:stop] = values[picks].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (float(values.mean()), float(low), float(high))
