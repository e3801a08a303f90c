"""Baselines every report shows beside the GNNs: popularity, item-kNN, content-based."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from gnn.models.base import FitContext, Recommender
from gnn.snapshot import GraphSnapshot
from gnn.split import DAY_MS


def interaction_matrix(train: GraphSnapshot, weights: np.ndarray | None = None) -> sp.csr_matrix:
    """customers x products, 1 where bought (or the summed `weights`)."""
    values = np.ones(len(train.customer), np.float32) if weights is None else weights
    matrix = sp.csr_matrix(
        (values, (train.customer, train.product)),
        shape=(train.n_customers, train.n_products),
        dtype=np.float32,
    )
    if weights is None:
        matrix.data[:] = 1.0
    return matrix


class Popularity(Recommender):
    """Products ranked by how many customers bought them in the last `window_days` of training
    (all of training with 0); ties broken by all-time buyers."""

    name: ClassVar[str] = "popularity"
    defaults: ClassVar[dict[str, Any]] = {"window_days": 90}

    def fit(self, train: GraphSnapshot, context: FitContext) -> None:
        self.n_customers, self.n_products = train.n_customers, train.n_products
        matrix = interaction_matrix(train)
        overall = np.asarray(matrix.sum(axis=0)).ravel()
        window = int(self.params["window_days"])
        recent = overall
        if window and len(train.ts_ms):
            since = int(train.ts_ms.max()) - window * DAY_MS
            keep = train.ts_ms >= since
            recent_matrix = sp.csr_matrix(
                (np.ones(int(keep.sum()), np.float32), (train.customer[keep], train.product[keep])),
                shape=matrix.shape,
            )
            recent_matrix.data[:] = 1.0
            recent = np.asarray(recent_matrix.sum(axis=0)).ravel()
        self.popularity = (recent + overall / (overall.max() + 1)).astype(np.float32)

    def score(self, customers: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(customers), self.n_products)).copy()

    def state(self) -> dict[str, Any]:
        return {"popularity": self.popularity}

    def load_state(self, state: dict[str, Any]) -> None:
        self.popularity = np.asarray(state["popularity"])


class ItemKNN(Recommender):
    """Item-item cosine similarity on co-purchase, `neighbours` kept per product; a customer's
    score for a product sums its similarity to what they bought."""

    name: ClassVar[str] = "itemknn"
    defaults: ClassVar[dict[str, Any]] = {"neighbours": 100, "shrink": 10.0}

    def fit(self, train: GraphSnapshot, context: FitContext) -> None:
        self.n_customers, self.n_products = train.n_customers, train.n_products
        self.history = interaction_matrix(train)
        item_user = self.history.T.tocsr()
        counts = np.asarray(self.history.sum(axis=0)).ravel()
        norms = np.sqrt(counts)
        k = int(self.params["neighbours"])
        shrink = float(self.params["shrink"])
        rows, cols, vals = [], [], []
        block = 1024
        for start in range(0, self.n_products, block):
            stop = min(start + block, self.n_products)
            co = (item_user[start:stop] @ self.history).toarray()  # [block, products]
            co[np.arange(stop - start), np.arange(start, stop)] = 0.0
            sim = co / (norms[start:stop, None] * norms[None, :] + shrink)
            keep = min(k, self.n_products - 1)
            if keep <= 0:
                continue
            top = np.argpartition(-sim, keep - 1, axis=1)[:, :keep]
            top_vals = np.take_along_axis(sim, top, axis=1)
            nonzero = top_vals > 0
            rows.append(np.repeat(np.arange(start, stop), keep)[nonzero.ravel()])
            cols.append(top[nonzero])
            vals.append(top_vals[nonzero])
        self.similarity = sp.csr_matrix(
            (
                np.concatenate(vals) if vals else np.empty(0, np.float32),
                (
                    np.concatenate(rows) if rows else np.empty(0, np.int64),
                    np.concatenate(cols) if cols else np.empty(0, np.int64),
                ),
            ),
            shape=(self.n_products, self.n_products),
            dtype=np.float32,
        )
        self.popularity = (counts / (counts.max() + 1) * 1e-6).astype(np.float32)

    def score(self, customers: np.ndarray) -> np.ndarray:
        scores = (self.history[customers] @ self.similarity).toarray().astype(np.float32)
        return scores + self.popularity  # ties (no history) fall back to popularity

    def state(self) -> dict[str, Any]:
        return {"history": self.history, "similarity": self.similarity, "pop": self.popularity}

    def load_state(self, state: dict[str, Any]) -> None:
        self.history, self.similarity = state["history"], state["similarity"]
        self.popularity = state["pop"]


def content_features(train: GraphSnapshot, price_levels: int = 5) -> sp.csr_matrix:
    """products x features, IDF-weighted: categories (with ancestors), brand, attributes and a
    price level (quantile of price within the product's leaf category)."""
    n = train.n_products
    cats = train.product_categories()
    content_rows, content_cols, content_width = train.content_pairs()
    rows: list[np.ndarray] = [content_rows]
    cols: list[np.ndarray] = [content_cols]
    # Price level within the leaf (the first category listed for the product).
    leaf = np.array([chain[0] if chain else -1 for chain in cats])
    level = np.full(n, -1)
    price = train.product_price
    for c in np.unique(leaf):
        members = np.flatnonzero((leaf == c) & ~np.isnan(price))
        if len(members) >= price_levels:
            ranks = price[members].argsort().argsort()
            level[members] = ranks * price_levels // len(members)
    has_level = level >= 0
    rows.append(np.flatnonzero(has_level))
    cols.append(content_width + level[has_level])
    width = content_width + price_levels
    all_rows, all_cols = np.concatenate(rows), np.concatenate(cols)
    matrix = sp.csr_matrix(
        (np.ones(len(all_rows), np.float32), (all_rows, all_cols)), shape=(n, width)
    )
    matrix.data[:] = 1.0
    df = np.asarray((matrix > 0).sum(axis=0)).ravel()
    idf = np.log((1 + n) / (1 + df)) + 1
    matrix = matrix @ sp.diags(idf.astype(np.float32))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sp.diags(1 / np.maximum(norms, 1e-12)) @ matrix


class ContentBased(Recommender):
    """A customer's profile is the recency-weighted sum of the content vectors of what they
    bought; products are ranked by cosine similarity to it."""

    name: ClassVar[str] = "content"
    defaults: ClassVar[dict[str, Any]] = {"half_life_days": 60.0}

    def fit(self, train: GraphSnapshot, context: FitContext) -> None:
        self.n_customers, self.n_products = train.n_customers, train.n_products
        self.features = content_features(train).tocsr().astype(np.float32)
        weights = np.ones(len(train.customer), np.float32)
        if len(train.ts_ms):
            age_days = (int(train.ts_ms.max()) - train.ts_ms) / DAY_MS
            weights = np.power(0.5, age_days / float(self.params["half_life_days"])).astype(
                np.float32
            )
        self.history = interaction_matrix(train, weights)
        counts = np.bincount(train.product, minlength=self.n_products).astype(np.float32)
        self.popularity = counts / (counts.max() + 1) * 1e-6

    def score(self, customers: np.ndarray) -> np.ndarray:
        profiles = self.history[customers] @ self.features
        scores = (profiles @ self.features.T).toarray().astype(np.float32)
        return scores + self.popularity

    def state(self) -> dict[str, Any]:
        return {"features": self.features, "history": self.history, "pop": self.popularity}

    def load_state(self, state: dict[str, Any]) -> None:
        self.features, self.history = state["features"], state["history"]
        self.popularity = state["pop"]
