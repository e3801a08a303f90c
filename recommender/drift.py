"""Drift of what the shop does and what the model scores, against the training snapshot (PSI).

Two kinds of signal, each a distribution over bins compared with the Population Stability
Index, PSI = sum over bins of (actual - expected) * ln(actual / expected):

* `interaction_mix`: the share of order lines per top-level category. The reference is the
  snapshot the model version was registered with (its training data); the current mix is the
  latest `KGREC_DRIFT_WINDOW_DAYS` of orders in the graph.
* `score_distribution:<surface>`: the model's top-k affinities (customer vector . product
  vector, bought products left out) of the customers served a personal list on a surface. The
  reference is the same quantity over the training snapshot's customers, binned by that
  sample's deciles, so each reference bin holds about a tenth and a shift either way shows.
  The served items' own scores are not used: stock, rules, promotions and diversity move them
  away from the model's top-k (measured on an unchanged test shop: PSI 0.17 from that alone),
  which is not drift.

The reference is computed once, at registration (`training_reference`), and saved with the
version's artifacts as `drift_reference.json`: the current data must never stand in for it.

Pure functions and a small thread-safe buffer; no Neo4j here.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

#: A bin with no observations on one side would make PSI infinite (ln 0). Shares below this are
#: raised to it, on both sides, before the sum: an empty bin then counts as a rare one, and a
#: whole distribution moved into a bin that held nothing gives a large but finite PSI (a
#: share of 0.5 against an empty bin alone adds 0.5 * ln(0.5 / 1e-4) = 4.26).
EPSILON = 1e-4

#: Products with no category are counted in this bin.
NO_CATEGORY = "(none)"

#: How many of the model's best products per customer make the score reference (top-k).
REFERENCE_K = 10

#: Customers sampled for the score reference (the affinities of a larger shop add little).
REFERENCE_CUSTOMERS = 2000

#: Served affinities (k per personal list) kept per surface and model version in one process.
SERVED_SCORES_KEPT = 20_000

Status = Literal["ok", "warn", "alert", "insufficient_data"]
_SEVERITY: dict[str, int] = {"insufficient_data": 0, "ok": 1, "warn": 2, "alert": 3}


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """Population Stability Index of `actual` shares against `expected` shares (same bins).

    Shares are taken as given (each side should sum to 1); each is raised to at least
    `epsilon` so that an empty bin does not make the index infinite.

    Raises:
        ValueError: the two sides have different numbers of bins, or none.
    """
    if len(expected) != len(actual) or not len(expected):
        raise ValueError(
            f"PSI needs the same bins on both sides: {len(expected)} expected, {len(actual)} actual"
        )
    e = np.maximum(np.asarray(expected, dtype=float), epsilon)
    a = np.maximum(np.asarray(actual, dtype=float), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def shares(counts: Mapping[str, float], bins: Sequence[str]) -> list[float]:
    """Counts per named bin as shares over `bins` (a bin not in `counts` has share 0)."""
    total = float(sum(counts.get(b, 0.0) for b in bins))
    if total <= 0:
        return [0.0] * len(bins)
    return [counts.get(b, 0.0) / total for b in bins]


def decile_edges(sample: Sequence[float] | np.ndarray) -> list[float]:
    """The interior cut points of a sample's deciles (at most 9; ties merged), for `binned`.

    Raises:
        ValueError: an empty sample.
    """
    values = np.asarray(sample, dtype=float)
    if values.size == 0:
        raise ValueError("no scores to take deciles of")
    return [float(x) for x in np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9)))]


def binned(values: Sequence[float] | np.ndarray, edges: Sequence[float]) -> list[float]:
    """Shares of `values` in the bins (-inf, e1], (e1, e2], ..., (en, inf)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return [0.0] * (len(edges) + 1)
    index = np.searchsorted(np.asarray(edges, dtype=float), data, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return [float(c) / data.size for c in counts]


def status(value: float | None, *, warn: float, alert: float) -> Status:
    """ok below `warn`, warn from `warn`, alert from `alert`; no value: insufficient data."""
    if value is None or math.isnan(value):
        return "insufficient_data"
    if value >= alert:
        return "alert"
    if value >= warn:
        return "warn"
    return "ok"


def worst(statuses: Sequence[str]) -> str:
    """The most severe of several statuses (insufficient data is the least)."""
    return max(statuses, key=lambda s: _SEVERITY.get(s, 0), default="insufficient_data")


# -- the reference, from the training snapshot ---------------------------------------------------
def top_level_categories(
    n_products: int,
    category_ids: Sequence[str],
    in_category: tuple[np.ndarray, np.ndarray],
    subcategory_of: tuple[np.ndarray, np.ndarray],
) -> list[str]:
    """Each product's top-level category id: the root above each of its categories, the
    smallest id when there are several (the Cypher of the current mix takes the same one)."""
    parent: dict[int, int] = {}
    for child, up in zip(subcategory_of[0].tolist(), subcategory_of[1].tolist(), strict=True):
        parent.setdefault(int(child), int(up))

    def root(category: int) -> str:
        seen = {category}
        while category in parent and parent[category] not in seen:
            category = parent[category]
            seen.add(category)
        return category_ids[category]

    roots: list[set[str]] = [set() for _ in range(n_products)]
    for product, category in zip(in_category[0].tolist(), in_category[1].tolist(), strict=True):
        roots[int(product)].add(root(int(category)))
    return [min(r) if r else NO_CATEGORY for r in roots]


def category_mix(product_rows: np.ndarray, top_category: Sequence[str]) -> dict[str, int]:
    """Order lines per top-level category (`product_rows`: the product index of each line)."""
    counts: dict[str, int] = {}
    for row, n in zip(*np.unique(product_rows, return_counts=True), strict=True):
        name = top_category[int(row)]
        counts[name] = counts.get(name, 0) + int(n)
    return counts


def top_k_affinities(
    customer_vectors: np.ndarray,
    product_vectors: np.ndarray,
    bought: Mapping[int, np.ndarray],
    customers: np.ndarray,
    k: int = REFERENCE_K,
) -> np.ndarray:
    """The `k` best affinities (dot products) of each customer in `customers`, leaving out what
    they bought (the serving default), flattened."""
    if customers.size == 0 or product_vectors.shape[0] == 0:
        return np.empty(0)
    scores = customer_vectors[customers] @ product_vectors.T
    for row, customer in enumerate(customers.tolist()):
        seen = bought.get(int(customer))
        if seen is not None and seen.size:
            scores[row, seen] = -np.inf
    k = min(k, scores.shape[1])
    top = -np.partition(-scores, k - 1, axis=1)[:, :k]
    values = top.ravel()
    return np.asarray(values[np.isfinite(values)], dtype=float)


def training_reference(
    *,
    product_rows: np.ndarray,
    customer_rows: np.ndarray,
    ts_ms: np.ndarray,
    top_category: Sequence[str],
    vectors: tuple[np.ndarray, np.ndarray] | None,
    seed: int = 0,
) -> dict[str, Any]:
    """What drift is measured against, from the order lines a version was trained on (product
    and customer index and time of each line) and its vectors (customers, products)."""
    mix = category_mix(product_rows, top_category)
    reference: dict[str, Any] = {
        "interaction_mix": {
            "counts": mix,
            "interactions": int(product_rows.size),
            "from_ms": int(ts_ms.min()) if ts_ms.size else None,
            "to_ms": int(ts_ms.max()) if ts_ms.size else None,
        },
        "score_distribution": None,
    }
    if vectors is None or customer_rows.size == 0:
        return reference
    buyers = np.unique(customer_rows)
    rng = np.random.default_rng(seed)
    if buyers.size > REFERENCE_CUSTOMERS:
        buyers = np.sort(rng.choice(buyers, REFERENCE_CUSTOMERS, replace=False))
    wanted = set(buyers.tolist())
    bought: dict[int, list[int]] = {}
    for c, p in zip(customer_rows.tolist(), product_rows.tolist(), strict=True):
        if c in wanted:
            bought.setdefault(int(c), []).append(int(p))
    sample = top_k_affinities(
        vectors[0],
        vectors[1],
        {c: np.unique(np.asarray(p, dtype=np.int64)) for c, p in bought.items()},
        buyers,
    )
    if sample.size:
        edges = decile_edges(sample)
        reference["score_distribution"] = {
            "edges": edges,
            "shares": binned(sample, edges),
            "customers": int(buyers.size),
            "k": REFERENCE_K,
            "sample": int(sample.size),
        }
    return reference


# -- the current scores, from served lists -------------------------------------------------------
class ServedScores:
    """The top-k affinities of the customers an API process served personal lists, per surface
    and model version, the latest `kept` of each (a ring: memory stays bounded under any
    load)."""

    def __init__(self, kept: int = SERVED_SCORES_KEPT) -> None:
        self.kept = kept
        self._values: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def observe(self, surface: str, version_id: str | None, values: Sequence[float]) -> None:
        if version_id is None or not values:
            return
        with self._lock:
            ring = self._values.get((surface, version_id))
            if ring is None:
                ring = self._values[(surface, version_id)] = deque(maxlen=self.kept)
            ring.extend(values)

    def surfaces(self, version_id: str | None) -> list[str]:
        with self._lock:
            return sorted(s for s, v in self._values if v == version_id)

    def values(self, surface: str, version_id: str | None) -> np.ndarray:
        with self._lock:
            ring = self._values.get((surface, version_id or ""))
            return np.asarray(list(ring) if ring else [], dtype=float)


@dataclass(frozen=True)
class Comparison:
    """One signal: its bins, the shares on both sides, PSI and its status."""

    signal: str
    bins: list[str]
    expected: list[float]
    actual: list[float]
    observations: int
    psi: float | None
    status: Status


def compare(
    signal: str,
    bins: list[str],
    expected: list[float],
    actual: list[float],
    observations: int,
    *,
    warn: float,
    alert: float,
    min_observations: int,
) -> Comparison:
    """PSI of one signal, or none (insufficient data) below `min_observations`."""
    value = psi(expected, actual) if observations >= min_observations else None
    return Comparison(
        signal,
        bins,
        [round(x, 6) for x in expected],
        [round(x, 6) for x in actual],
        observations,
        None if value is None else round(value, 6),
        status(value, warn=warn, alert=alert),
    )


def score_bins(edges: Sequence[float]) -> list[str]:
    """Readable names of the bins that `binned` fills."""
    bounds = ["-inf", *(f"{e:.4g}" for e in edges), "inf"]
    return [f"({lo}, {hi}]" for lo, hi in itertools.pairwise(bounds)]
