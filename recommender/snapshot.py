"""The serving snapshot: everything a recommendation needs, in memory, read from the graph once.

Active model vectors (from the active `ModelVersion`'s artifacts), product facts, stock summed
over locations, the current forecasts' stock risk, promotions active now, popularity overall
and per segment, what each customer bought, and the explanation paths' neighbourhood
(`recommender.path_index.PathIndex`). Requests never read Neo4j for these; a new
snapshot is built and swapped in whole (`recommender.engine.Engine.swap`), so a request sees
either the old one or the new one, never a mix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import neo4j
import numpy as np
import scipy.sparse as sp

from graph.cypher import load_cypher
from recommender.path_index import PathIndex, Purchases, load_path_index, stream


@dataclass(frozen=True)
class Promotion:
    promotion_id: str
    discount_pct: float
    ends_at: datetime


@dataclass(frozen=True)
class ServingSnapshot:
    version_id: str | None
    product_ids: list[str]
    product_index: dict[str, int]
    names: list[str]
    active: np.ndarray  # bool per product
    on_hand: np.ndarray  # float per product, nan when no stock record
    lead_time_days: np.ndarray  # float, nan when unknown
    days_of_cover: np.ndarray  # float, nan when no current forecast
    stockout_probability: np.ndarray  # float, nan when no current forecast
    overstock: np.ndarray  # bool
    promotions: dict[int, Promotion]  # best active promotion per product
    popularity: np.ndarray  # buyers per product
    customer_index: dict[str, int]
    customer_segment: dict[str, str]
    opted_out: frozenset[str]
    segment_popularity: dict[str, np.ndarray]
    bought: dict[str, np.ndarray]  # product indexes per customer id
    customer_vectors: np.ndarray | None  # rows in `customer_index` order
    product_vectors: np.ndarray | None  # rows in `product_ids` order
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    prices: np.ndarray | None = None  # float per product, nan when unknown
    product_category: list[str | None] = field(default_factory=list)  # first category
    product_brand: list[str | None] = field(default_factory=list)
    category_parent: dict[str, str] = field(default_factory=dict)
    category_names: dict[str, str] = field(default_factory=dict)
    bought_at: dict[str, np.ndarray] = field(default_factory=dict)  # epoch ms, parallel to bought
    copurchase: sp.csr_matrix | None = None  # customers who bought both, products x products
    # Per product, its best co-purchase neighbours (index, weight; -1/0 padded): what serving
    # reads. `load_snapshot` keeps only these, not the full matrix.
    neighbours: tuple[np.ndarray, np.ndarray] | None = None
    # The explanation paths' neighbourhood (`recommender.path_index`), None when not loaded:
    # paths then come from Neo4j.
    paths: PathIndex | None = None

    @property
    def n_products(self) -> int:
        return len(self.product_ids)

    @cached_property
    def category_members(self) -> dict[str, np.ndarray]:
        """Products per category, its subcategories' included (a rule on "Pens" reaches
        "Fountain pens")."""
        members: dict[str, list[int]] = {}
        for product, category in enumerate(self.product_category):
            seen: set[str] = set()
            while category is not None and category not in seen:
                seen.add(category)
                members.setdefault(category, []).append(product)
                category = self.category_parent.get(category)
        return {c: np.array(p, dtype=np.int64) for c, p in members.items()}

    @cached_property
    def brand_members(self) -> dict[str, np.ndarray]:
        members: dict[str, list[int]] = {}
        for product, brand in enumerate(self.product_brand):
            if brand is not None:
                members.setdefault(brand, []).append(product)
        return {b: np.array(p, dtype=np.int64) for b, p in members.items()}

    @cached_property
    def customer_has_vector(self) -> np.ndarray:
        if self.customer_vectors is None:
            return np.zeros(len(self.customer_index), dtype=bool)
        return np.asarray(np.any(self.customer_vectors != 0, axis=1))

    @cached_property
    def promoted(self) -> np.ndarray:
        return np.array(sorted(self.promotions), dtype=np.int64)

    @cached_property
    def copurchase_top(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.neighbours is not None:
            return self.neighbours
        if self.copurchase is None:
            return None
        return copurchase_neighbours(self.copurchase, self.popularity)

    @cached_property
    def product_norms(self) -> np.ndarray:
        if self.product_vectors is None:
            return np.zeros(self.n_products)
        return np.asarray(np.linalg.norm(self.product_vectors, axis=1), dtype=float)

    @cached_property
    def category_codes(self) -> np.ndarray:
        """An integer per product's category (-1 when none), for per-category caps."""
        codes: dict[str, int] = {}
        out = np.full(self.n_products, -1, dtype=np.int64)
        for product, category in enumerate(self.product_category):
            if category is not None:
                out[product] = codes.setdefault(category, len(codes))
        return out

    def category_name(self, category_id: str | None) -> str | None:
        if category_id is None:
            return None
        return self.category_names.get(category_id, category_id)

    @cached_property
    def available(self) -> np.ndarray:
        """Active and not out of stock (no stock record counts as available): computed once
        per snapshot, copied by each request that filters further."""
        return np.asarray(self.active & ~(self.on_hand <= 0))


def _vectors(
    artifacts: Path, product_ids: list[str], customer_ids: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The version's vectors re-ordered to the snapshot's ids (zeros for ids it never saw)."""
    maps = json.loads((artifacts / "id_maps.json").read_text())
    saved = np.load(artifacts / "embeddings.npz")
    out = []
    for ids, saved_ids, matrix in (
        (product_ids, maps["product"], saved["products"]),
        (customer_ids, maps["customer"], saved["customers"]),
    ):
        where = {key: i for i, key in enumerate(saved_ids)}
        block = np.zeros((len(ids), matrix.shape[1]), dtype=np.float32)
        for row, key in enumerate(ids):
            i = where.get(key)
            if i is not None:
                block[row] = matrix[i]
        out.append(block)
    return out[0], out[1]


def load_snapshot(
    driver: neo4j.Driver, *, database: str, now: datetime | None = None, paths: bool = True
) -> ServingSnapshot:
    """Reads the serving state from the graph (and the active version's artifacts); with
    `paths`, the explanation paths' index too."""
    moment = now or datetime.now(UTC)

    def run(name: str, **params: object) -> list[neo4j.Record]:
        records, _, _ = driver.execute_query(
            load_cypher("recommender", name), params, database_=database
        )
        return records

    products = run("snapshot_products")
    product_ids = [r["id"] for r in products]
    index = {pid: i for i, pid in enumerate(product_ids)}
    n = len(product_ids)
    on_hand = np.full(n, np.nan)
    lead = np.full(n, np.nan)
    cover = np.full(n, np.nan)
    risk = np.full(n, np.nan)
    overstock = np.zeros(n, dtype=bool)
    popularity = np.zeros(n)
    for i, r in enumerate(products):
        if r["on_hand"] is not None:
            on_hand[i] = float(r["on_hand"])
        if r["lead_time_days"] is not None:
            lead[i] = float(r["lead_time_days"])
        if r["days_of_cover"] is not None:
            cover[i] = float(r["days_of_cover"])
        if r["stockout_probability"] is not None:
            risk[i] = float(r["stockout_probability"])
        overstock[i] = bool(r["overstock"])
        popularity[i] = float(r["buyers"])
    promotions: dict[int, Promotion] = {}
    running = driver.execute_query(
        load_cypher("graph", "promotion_products"),
        {"since": moment.isoformat(), "until": moment.isoformat()},
        database_=database,
    ).records
    for r in running:
        target = index.get(r["product_id"])
        if target is None:
            continue
        promo = Promotion(r["promotion_id"], float(r["discount_pct"]), r["ends_at"].to_native())
        if target not in promotions or promo.discount_pct > promotions[target].discount_pct:
            promotions[target] = promo

    categories = run("snapshot_categories")
    customers = run("snapshot_customers")
    customer_ids = [r["id"] for r in customers]
    customer_index = {cid: i for i, cid in enumerate(customer_ids)}
    segment = {r["id"]: r["segment"] for r in customers if r["segment"] is not None}
    opted_out = frozenset(r["id"] for r in customers if r["personalization"] is False)
    bought: dict[str, np.ndarray] = {}
    bought_at: dict[str, np.ndarray] = {}
    segment_popularity: dict[str, np.ndarray] = {}
    flat = Purchases() if paths else None
    for r in stream(driver, database, "snapshot_purchases"):
        pairs = [(index[p], t, k) for p, t, k in r["bought"] if p in index]
        c = customer_index.get(r["customer"])
        if flat is not None and c is not None:
            flat.add(c, pairs)
        items = np.array([p for p, _, _ in pairs], dtype=np.int64)
        bought[r["customer"]] = items
        bought_at[r["customer"]] = np.array([t or 0 for _, t, _ in pairs], dtype=np.int64)
        seg = segment.get(r["customer"])
        if seg is not None:
            counts = segment_popularity.setdefault(seg, np.zeros(n))
            counts[items] += 1
    path_index = None
    if flat is not None:
        path_index = load_path_index(
            driver,
            database=database,
            product_ids=product_ids,
            product_names=[r["name"] for r in products],
            product_index=index,
            customer_ids=customer_ids,
            customer_index=customer_index,
            personalization=[r["personalization"] for r in customers],
            segment_property=[r["segment"] for r in customers],
            purchases=flat,
        )

    version = run("snapshot_active_version")
    version_id = None
    product_vectors = customer_vectors = None
    if version:
        version_id = version[0]["version_id"]
        product_vectors, customer_vectors = _vectors(
            Path(version[0]["artifacts"]), product_ids, customer_ids
        )
    return ServingSnapshot(
        version_id=version_id,
        product_ids=product_ids,
        product_index=index,
        names=[r["name"] or r["id"] for r in products],
        active=np.array([r["active"] is not False for r in products], dtype=bool),
        on_hand=on_hand,
        lead_time_days=lead,
        days_of_cover=cover,
        stockout_probability=risk,
        overstock=overstock,
        promotions=promotions,
        popularity=popularity,
        customer_index=customer_index,
        customer_segment=segment,
        opted_out=opted_out,
        segment_popularity=segment_popularity,
        bought=bought,
        customer_vectors=customer_vectors,
        product_vectors=product_vectors,
        loaded_at=moment,
        prices=np.array([np.nan if r["price"] is None else float(r["price"]) for r in products]),
        product_category=[r["category_id"] for r in products],
        product_brand=[r["brand_id"] for r in products],
        category_parent={r["id"]: r["parent"] for r in categories if r["parent"] is not None},
        category_names={r["id"]: r["name"] or r["id"] for r in categories},
        bought_at=bought_at,
        neighbours=copurchase_neighbours(copurchase_counts(bought, n), popularity),
        paths=path_index,
    )


#: Co-purchase neighbours kept per product for serving (bought together, cart, candidates).
NEIGHBOURS = 50


def copurchase_neighbours(
    counts: sp.csr_matrix, popularity: np.ndarray, k: int = NEIGHBOURS
) -> tuple[np.ndarray, np.ndarray]:
    """Each product's `k` best co-purchase neighbours, weighted by the count of customers who
    bought both divided by the square root of the neighbour's buyers (so best-sellers do not
    win by size alone): ([n, k] indexes, -1 padded; [n, k] weights, 0 padded)."""
    n = counts.shape[0]
    index = np.full((n, k), -1, dtype=np.int32)
    weight = np.zeros((n, k), dtype=np.float32)
    scale = 1.0 / np.sqrt(np.maximum(popularity, 1.0))
    for row in range(n):
        start, stop = counts.indptr[row], counts.indptr[row + 1]
        if start == stop:
            continue
        cols = counts.indices[start:stop]
        values = counts.data[start:stop] * scale[cols]
        if len(cols) > k:
            keep = np.argpartition(-values, k - 1)[:k]
            cols, values = cols[keep], values[keep]
        order = np.lexsort((cols, -values))
        index[row, : len(cols)] = cols[order]
        weight[row, : len(cols)] = values[order]
    return index, weight


def copurchase_counts(bought: dict[str, np.ndarray], n_products: int) -> sp.csr_matrix:
    """Products x products: how many customers bought both (the diagonal is zero)."""
    empty = [np.empty(0, dtype=np.int64)]
    rows = np.concatenate([np.full(len(v), i) for i, v in enumerate(bought.values())] or empty)
    cols = np.concatenate(list(bought.values()) or empty)
    matrix = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.float32), (rows.astype(np.int64), cols.astype(np.int64))),
        shape=(len(bought), n_products),
    )
    matrix.data[:] = 1.0  # a customer counts once per product
    counts = (matrix.T @ matrix).tocsr()
    counts.setdiag(0)
    counts.eliminate_zeros()
    return counts
