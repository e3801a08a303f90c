"""Synthetic shops in the input format: seeded, deterministic, vectorised (numpy), with structure.

What makes the data realistic and learnable (DATASETS.md, "Synthetic shops"):

- a taxonomy 2-3 levels deep; brands that specialise in a few top-level categories, each in a
  price tier (budget, mid, premium); products with long-tail popularity;
- customers with stable tastes: a few favourite leaf categories, a few favourite brands and a
  price tier; a long tail of activity (most buy a little, some a lot); a couple of staples
  they buy again;
- each order line is drawn by "sampling-importance-resampling": candidates from the chosen
  leaf by popularity, re-weighted by the customer's brand and tier fit, the season of the
  category, and promotions running that day; so tastes, seasonality and promotions all move
  demand, and popularity alone explains only part of it;
- weekly and yearly seasonality, a mild upward trend, new products appearing during the period;
- views of considered-but-not-bought candidates, add-to-cart events, ratings; stock with lead
  times and some stockouts; weekly store sales; knowledge triples.

Everything is drawn from one `numpy.random.Generator(PCG64(seed))` in a fixed order, so the
same arguments write byte-identical files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

SEGMENTS = np.array(["Consumer", "Corporate", "Home Office"])
REGIONS = np.array(["North", "South", "East", "West", "Central"])
CHANNELS = np.array(["web", "app", "web", "web", "app"])
TIERS = np.array(["budget", "mid", "premium"])
TIER_PRICE = np.array([0.6, 1.0, 1.9])
COLOURS = np.array(["black", "white", "red", "blue", "green", "grey"])
MATERIALS = np.array(["steel", "plastic", "wood", "cotton", "glass", "paper", "aluminium"])
COUNTRIES = np.array(["Sweden", "Germany", "Italy", "Japan", "USA", "France", "Poland"])
START = date(2024, 1, 1)
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class ShopSpec:
    customers: int = 5_000
    products: int = 1_000
    days: int = 365
    seed: int = 7
    lines_per_customer: float = 20.0
    locations: int = 2


@dataclass(frozen=True)
class GeneratedShop:
    folder: Path
    rows: dict[str, int]
    seconds: float


def generate_shop(spec: ShopSpec, folder: Path) -> GeneratedShop:
    """Writes every file of the input format for a shop described by `spec` into `folder`."""
    if spec.customers < 10 or spec.products < 20 or spec.days < 14:
        raise ValueError("a synthetic shop needs at least 10 customers, 20 products and 14 days")
    began = time.monotonic()
    rng = np.random.Generator(np.random.PCG64(spec.seed))
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}

    taxonomy = _taxonomy(rng, spec.products)
    rows["categories"] = _write(folder / "categories.csv", taxonomy.table)
    catalogue = _catalogue(rng, spec, taxonomy)
    rows["products"] = _write(folder / "products.csv", catalogue.table)
    promotions = _promotions(rng, spec, taxonomy, catalogue)
    rows["promotions"] = _write(folder / "promotions.csv", promotions.table)
    people = _customers(rng, spec, taxonomy, catalogue)
    lines = _order_lines(rng, spec, taxonomy, catalogue, people, promotions)
    rows["orders"] = _write(folder / "orders.csv", lines.orders)
    rows["customers"] = _write(folder / "customers.csv", people.table(lines))
    rows["events"] = _write(folder / "events.csv", lines.events)
    rows["stock"] = _write(folder / "stock.csv", _stock(rng, spec, catalogue, lines))
    rows["sales"] = _write(folder / "sales.csv", _sales(rng, spec, catalogue, taxonomy, promotions))
    rows["relations"] = _write(folder / "relations.csv", _relations(rng, catalogue, taxonomy))
    return GeneratedShop(folder, rows, time.monotonic() - began)


# -- taxonomy ----------------------------------------------------------------------------------


@dataclass
class _Taxonomy:
    table: pa.Table
    leaf_ids: np.ndarray  # category id of each leaf
    leaf_top: np.ndarray  # index of the top-level category of each leaf
    tops: int
    season_phase: np.ndarray  # per top category, day of year of its peak
    season_strength: np.ndarray


def _taxonomy(rng: np.random.Generator, products: int) -> _Taxonomy:
    tops = int(np.clip(products // 800, 4, 24))
    ids: list[str] = []
    names: list[str] = []
    parents: list[str | None] = []
    leaf_ids: list[str] = []
    leaf_top: list[int] = []
    leaves_wanted = max(tops * 3, products // 60)
    per_top = np.maximum(2, rng.multinomial(leaves_wanted, np.full(tops, 1 / tops)))
    for t in range(tops):
        top_id = f"CAT-{t + 1:02d}"
        ids.append(top_id)
        names.append(f"Department {t + 1}")
        parents.append(None)
        remaining = int(per_top[t])
        s = 0
        while remaining > 0:
            s += 1
            sub_id = f"{top_id}-{s:02d}"
            ids.append(sub_id)
            names.append(f"Department {t + 1} / Aisle {s}")
            parents.append(top_id)
            # About a third of the aisles split into shelves: a third level.
            if remaining >= 3 and rng.random() < 0.35:
                shelves = min(remaining, int(rng.integers(2, 4)))
                for k in range(shelves):
                    shelf_id = f"{sub_id}-{k + 1:02d}"
                    ids.append(shelf_id)
                    names.append(f"Department {t + 1} / Aisle {s} / Shelf {k + 1}")
                    parents.append(sub_id)
                    leaf_ids.append(shelf_id)
                    leaf_top.append(t)
                remaining -= shelves
            else:
                leaf_ids.append(sub_id)
                leaf_top.append(t)
                remaining -= 1
    table = pa.table({"category_id": ids, "name": names, "parent_id": parents})
    return _Taxonomy(
        table,
        np.array(leaf_ids),
        np.array(leaf_top),
        tops,
        rng.integers(0, 365, tops),
        rng.uniform(0.05, 0.6, tops),
    )


# -- catalogue ---------------------------------------------------------------------------------


@dataclass
class _Catalogue:
    table: pa.Table
    ids: np.ndarray
    leaf: np.ndarray  # leaf index of each product
    brand: np.ndarray  # brand index
    brand_ids: np.ndarray
    brand_top: np.ndarray  # main top category of each brand
    tier: np.ndarray  # 0 budget, 1 mid, 2 premium
    price: np.ndarray
    popularity: np.ndarray
    created_day: np.ndarray  # day index (negative: before the period)
    leaf_order: np.ndarray  # products sorted by leaf
    leaf_start: np.ndarray  # offset of each leaf in leaf_order
    leaf_count: np.ndarray
    leaf_cumweights: np.ndarray  # running popularity total over leaf_order
    material: np.ndarray


def _catalogue(rng: np.random.Generator, spec: ShopSpec, tax: _Taxonomy) -> _Catalogue:
    n = spec.products
    leaves = len(tax.leaf_ids)
    # Leaf sizes follow a long tail; every leaf has at least one product.
    leaf_weight = rng.pareto(1.5, leaves) + 0.5
    leaf = np.concatenate(
        [np.arange(leaves), rng.choice(leaves, n - leaves, p=leaf_weight / leaf_weight.sum())]
    )
    rng.shuffle(leaf)
    top = tax.leaf_top[leaf]
    # Brands specialise: each has a main top category and a price tier.
    brands = int(np.clip(n // 40, 6, 2_000))
    brand_top = np.concatenate([np.arange(tax.tops), rng.integers(0, tax.tops, brands - tax.tops)])
    brand_tier = rng.choice(3, brands, p=[0.35, 0.45, 0.2])
    brand_ids = np.array([f"Brand {b + 1:04d}" for b in range(brands)])
    brands_of_top = [np.flatnonzero(brand_top == t) for t in range(tax.tops)]
    brand = np.empty(n, dtype=np.int64)
    for t in range(tax.tops):
        mine = np.flatnonzero(top == t)
        # 85% of a department's products come from its own brands, the rest from any brand.
        own = rng.random(len(mine)) < 0.85
        pool = brands_of_top[t]
        brand[mine[own]] = pool[rng.integers(0, len(pool), own.sum())]
        brand[mine[~own]] = rng.integers(0, brands, (~own).sum())
    tier = np.where(rng.random(n) < 0.8, brand_tier[brand], rng.integers(0, 3, n))
    leaf_price = np.exp(rng.normal(3.0, 1.0, leaves))
    price = np.round(leaf_price[leaf] * TIER_PRICE[tier] * rng.lognormal(0, 0.15, n) + 0.49, 2)
    popularity = rng.lognormal(0.0, 1.3, n)  # long tail
    # 12% of products appear during the period (new products, cold start).
    created_day = np.where(
        rng.random(n) < 0.12, rng.integers(0, spec.days, n), -rng.integers(30, 900, n)
    )
    ids = np.array([f"P{i + 1:06d}" for i in range(n)])
    colour = COLOURS[rng.integers(0, len(COLOURS), n)]
    material = MATERIALS[(top * 3 + rng.integers(0, 2, n)) % len(MATERIALS)]
    attributes = np.char.add(np.char.add("colour=", colour), np.char.add(";material=", material))
    attributes = np.char.add(attributes, np.char.add(";tier=", TIERS[tier]))
    suppliers = np.char.add("SUP-", (brand % 50 + 1).astype(str))
    created = _timestamps(created_day.astype(np.float64) * SECONDS_PER_DAY)
    names = np.char.add(
        np.char.add(brand_ids[brand], " "),
        np.char.add(np.char.add(TIERS[tier], " item "), ids),
    )
    table = pa.table(
        {
            "product_id": ids,
            "name": names,
            "category_ids": tax.leaf_ids[leaf],
            "brand": brand_ids[brand],
            "price": price,
            "attributes": attributes,
            "created_at": created,
            "supplier_id": suppliers,
        }
    )
    order = np.argsort(leaf, kind="stable")
    counts = np.bincount(leaf, minlength=leaves)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # One running total over the products sorted by leaf: a leaf's slice is increasing, so
    # inverse-CDF draws within a leaf are a searchsorted into it.
    cum = np.cumsum(popularity[order])
    return _Catalogue(
        table,
        ids,
        leaf,
        brand,
        brand_ids,
        brand_top,
        tier,
        price,
        popularity,
        created_day,
        order,
        starts,
        counts,
        cum,
        material,
    )


# -- promotions --------------------------------------------------------------------------------


@dataclass
class _Promotions:
    table: pa.Table
    lift: np.ndarray  # [day, product] -> discount fraction of the best running promotion


def _promotions(
    rng: np.random.Generator, spec: ShopSpec, tax: _Taxonomy, cat: _Catalogue
) -> _Promotions:
    count = max(4, spec.days // 7 * 3)
    kind = rng.choice(3, count, p=[0.5, 0.3, 0.2])  # product, category (leaf), brand
    start = rng.integers(0, spec.days - 3, count)
    length = rng.integers(3, 15, count)
    end = np.minimum(start + length, spec.days)
    discount = rng.choice([5, 10, 15, 20, 25, 30, 40], count)
    lift = np.zeros((spec.days, len(cat.ids)), dtype=np.float32)
    target_type, target_id = [], []
    popular = np.argsort(-cat.popularity)[: max(10, len(cat.ids) // 5)]
    for i in range(count):
        if kind[i] == 0:
            product = int(popular[rng.integers(0, len(popular))])
            members = np.array([product])
            target_type.append("product")
            target_id.append(cat.ids[product])
        elif kind[i] == 1:
            leaf = int(rng.integers(0, len(tax.leaf_ids)))
            members = np.flatnonzero(cat.leaf == leaf)
            target_type.append("category")
            target_id.append(tax.leaf_ids[leaf])
        else:
            brand = int(rng.integers(0, len(cat.brand_ids)))
            members = np.flatnonzero(cat.brand == brand)
            target_type.append("brand")
            target_id.append(cat.brand_ids[brand])
        window = lift[start[i] : end[i], members]
        lift[start[i] : end[i], members] = np.maximum(window, discount[i] / 100)
    table = pa.table(
        {
            "promotion_id": [f"PR{i + 1:05d}" for i in range(count)],
            "name": [
                f"{d}% off {t} {x}"
                for d, t, x in zip(discount, target_type, target_id, strict=True)
            ],
            "discount_pct": discount.astype(np.float64),
            "starts_at": _timestamps(start * SECONDS_PER_DAY),
            "ends_at": _timestamps(end * SECONDS_PER_DAY - 1),
            "target_type": target_type,
            "target_id": target_id,
        }
    )
    return _Promotions(table, lift)


# -- customers ---------------------------------------------------------------------------------


@dataclass
class _Customers:
    ids: np.ndarray
    segment: np.ndarray
    region: np.ndarray
    fav_leaves: np.ndarray  # [customer, 4] leaf indexes
    fav_leaf_p: np.ndarray  # [customer, 4] weights
    fav_brands: np.ndarray  # [customer, 3] brand indexes
    tier: np.ndarray
    activity: np.ndarray
    staples: np.ndarray  # [customer, 2] product indexes
    join_day: np.ndarray

    def table(self, lines: _Lines) -> pa.Table:
        first_order = np.full(len(self.ids), np.iinfo(np.int64).max)
        np.minimum.at(first_order, lines.customer, lines.day)
        first_seen = np.minimum(first_order, self.join_day).astype(np.float64)
        return pa.table(
            {
                "customer_id": self.ids,
                "segment": SEGMENTS[self.segment],
                "region": REGIONS[self.region],
                "first_seen": _timestamps(first_seen * SECONDS_PER_DAY),
            }
        )


def _customers(
    rng: np.random.Generator, spec: ShopSpec, tax: _Taxonomy, cat: _Catalogue
) -> _Customers:
    n = spec.customers
    leaves = len(tax.leaf_ids)
    leaf_pop = np.bincount(cat.leaf, weights=cat.popularity, minlength=leaves)
    # Favourite leaves: a main department and mostly its leaves, plus one anywhere.
    main_top = rng.choice(tax.tops, n, p=_normalise(np.bincount(tax.leaf_top, minlength=tax.tops)))
    fav = np.empty((n, 4), dtype=np.int64)
    leaves_of_top = [np.flatnonzero(tax.leaf_top == t) for t in range(tax.tops)]
    for t in range(tax.tops):
        who = np.flatnonzero(main_top == t)
        pool = leaves_of_top[t]
        fav[who, :3] = pool[rng.choice(len(pool), (len(who), 3), p=_normalise(leaf_pop[pool]))]
    fav[:, 3] = rng.choice(leaves, n, p=_normalise(leaf_pop))
    fav_p = rng.dirichlet([3.0, 2.0, 1.0, 0.7], n)
    # Favourite brands among those selling in the favourite leaves (by product count).
    fav_brands = np.empty((n, 3), dtype=np.int64)
    first_in_leaf = cat.leaf_order[
        cat.leaf_start[fav[:, :3]]
        + (rng.random((n, 3)) * cat.leaf_count[fav[:, :3]]).astype(np.int64)
    ]
    fav_brands[:] = cat.brand[first_in_leaf]
    tier = rng.choice(3, n, p=[0.35, 0.45, 0.2])
    activity = rng.lognormal(0, 0.9, n)
    # Staples: two products of the favourite leaves, bought again and again.
    pick = cat.leaf_start[fav[:, :2]] + (rng.random((n, 2)) * cat.leaf_count[fav[:, :2]]).astype(
        np.int64
    )
    staples = cat.leaf_order[pick]
    join_day = rng.integers(-400, spec.days, n)
    return _Customers(
        np.array([f"C{i + 1:07d}" for i in range(n)]),
        rng.choice(3, n, p=[0.55, 0.3, 0.15]),
        rng.integers(0, len(REGIONS), n),
        fav,
        fav_p,
        fav_brands,
        tier,
        activity,
        staples,
        join_day,
    )


# -- orders and events -------------------------------------------------------------------------


@dataclass
class _Lines:
    orders: pa.Table
    events: pa.Table
    customer: np.ndarray
    product: np.ndarray
    day: np.ndarray
    quantity: np.ndarray


def _day_weights(spec: ShopSpec) -> np.ndarray:
    days = np.arange(spec.days)
    weekday = (START.weekday() + days) % 7
    weekly = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.2])[weekday]
    yearly = 1 + 0.25 * np.cos(2 * np.pi * (days - 330) / 365)  # a December peak
    trend = 1 + 0.3 * days / spec.days
    return weekly * yearly * trend


def _order_lines(
    rng: np.random.Generator,
    spec: ShopSpec,
    tax: _Taxonomy,
    cat: _Catalogue,
    people: _Customers,
    promos: _Promotions,
) -> _Lines:
    n_customers = spec.customers
    basket_mean = 1.8
    target_orders = spec.lines_per_customer * n_customers / basket_mean
    # Activity: most customers buy a little, some a lot; active only after they join.
    active_days = np.clip(spec.days - np.maximum(people.join_day, 0), 1, spec.days)
    rate = people.activity * active_days
    orders_per_customer = rng.poisson(rate * target_orders / rate.sum())
    order_customer = np.repeat(np.arange(n_customers), orders_per_customer)
    n_orders = len(order_customer)
    # Order days follow the season, from the customer's join day on.
    day_w = _day_weights(spec)
    cdf = np.cumsum(day_w) / day_w.sum()
    lo = cdf[np.maximum(people.join_day[order_customer], 0) - 1]
    lo = np.where(people.join_day[order_customer] <= 0, 0.0, lo)
    order_day = np.searchsorted(cdf, lo + rng.random(n_orders) * (1 - lo)).clip(0, spec.days - 1)
    order_second = rng.integers(8 * 3600, 22 * 3600, n_orders)
    basket = 1 + rng.poisson(basket_mean - 1, n_orders)
    line_order = np.repeat(np.arange(n_orders), basket)
    customer = order_customer[line_order]
    day = order_day[line_order]
    n_lines = len(line_order)

    # Which way each line is chosen: a staple, the customer's taste, or what is popular.
    mode = rng.choice(3, n_lines, p=[0.12, 0.73, 0.15])
    k = 8
    # Taste: a favourite leaf; popular: a leaf by overall popularity.
    fav_index = _choose_rows(rng, people.fav_leaf_p[customer])
    leaf_pop = np.bincount(cat.leaf, weights=cat.popularity, minlength=len(tax.leaf_ids))
    leaf = np.where(
        mode == 2,
        rng.choice(len(tax.leaf_ids), n_lines, p=_normalise(leaf_pop)),
        people.fav_leaves[customer, fav_index],
    )
    # k candidates per line from the leaf, by popularity (inverse CDF within the leaf).
    start, count = cat.leaf_start[leaf], cat.leaf_count[leaf]
    base = np.where(start > 0, cat.leaf_cumweights[np.maximum(start - 1, 0)], 0.0)
    total = cat.leaf_cumweights[start + count - 1] - base
    u = base[:, None] + rng.random((n_lines, k)) * total[:, None]
    pos = np.empty((n_lines, k), dtype=np.int64)
    for j in range(k):
        pos[:, j] = np.searchsorted(cat.leaf_cumweights, u[:, j], side="right")
    # searchsorted runs over the concatenation; keep inside the leaf.
    pos = np.clip(pos, start[:, None], (start + count - 1)[:, None])
    candidates = cat.leaf_order[pos]
    # Re-weight by taste: favourite brand, price tier, season, promotion, product availability.
    brand_fit = (cat.brand[candidates] == people.fav_brands[customer][:, [0]]) * 2.5
    brand_fit += (cat.brand[candidates] == people.fav_brands[customer][:, [1]]) * 1.5
    brand_fit += (cat.brand[candidates] == people.fav_brands[customer][:, [2]]) * 1.0
    tier_gap = np.abs(cat.tier[candidates] - people.tier[customer][:, None])
    tier_fit = np.array([1.0, 0.35, 0.08])[tier_gap]
    top = tax.leaf_top[cat.leaf[candidates]]
    season = 1 + tax.season_strength[top] * np.cos(
        2 * np.pi * (day[:, None] - tax.season_phase[top]) / 365
    )
    promo = 1 + 4 * promos.lift[day[:, None], candidates]
    exists = cat.created_day[candidates] <= day[:, None]
    taste_weight = np.where(mode[:, None] == 2, 1.0, (1 + brand_fit) * tier_fit)
    weight = taste_weight * season * promo * exists + 1e-9
    chosen_col = _choose_rows(rng, weight / weight.sum(axis=1, keepdims=True))
    product = candidates[np.arange(n_lines), chosen_col]
    staple = people.staples[customer, rng.integers(0, 2, n_lines)]
    product = np.where((mode == 0) & (cat.created_day[staple] <= day), staple, product)
    # A repeated product within an order stays as repeated lines (real exports do this).
    quantity = 1 + rng.poisson(np.where(people.segment[customer] == 1, 1.2, 0.3))
    discount = promos.lift[day, product].astype(np.float64)
    unit_price = np.round(cat.price[product], 2)
    ts = day * SECONDS_PER_DAY + order_second[line_order]
    orders = pa.table(
        {
            "order_id": np.char.add("O", (line_order + 1).astype(str)),
            "customer_id": people.ids[customer],
            "product_id": cat.ids[product],
            "ts": _timestamps(ts.astype(np.float64)),
            "quantity": quantity,
            "unit_price": unit_price,
            "discount": discount,
            "channel": CHANNELS[order_customer[line_order] % len(CHANNELS)],
        }
    )
    events = _events(rng, people, cat, customer, product, candidates, chosen_col, ts)
    return _Lines(orders, events, customer, product, day, quantity)


def _events(
    rng: np.random.Generator,
    people: _Customers,
    cat: _Catalogue,
    customer: np.ndarray,
    product: np.ndarray,
    candidates: np.ndarray,
    chosen_col: np.ndarray,
    ts: np.ndarray,
) -> pa.Table:
    n = len(product)
    # Views of the bought item and of a considered alternative, carts and ratings, for some lines.
    alt_col = (chosen_col + 1 + rng.integers(0, candidates.shape[1] - 1, n)) % candidates.shape[1]
    alternative = candidates[np.arange(n), alt_col]
    viewed = rng.random(n) < 0.4
    considered = rng.random(n) < 0.3
    carted = rng.random(n) < 0.2
    rated = rng.random(n) < 0.04
    tier_match = cat.tier[product] == people.tier[customer]
    rating = np.clip(np.round(rng.normal(np.where(tier_match, 4.3, 3.4), 0.7)), 1, 5)
    parts = [
        (customer[viewed], product[viewed], "view", ts[viewed] - 600, None),
        (customer[considered], alternative[considered], "view", ts[considered] - 420, None),
        (customer[carted], product[carted], "add_to_cart", ts[carted] - 120, None),
        (customer[rated], product[rated], "rating", ts[rated] + 5 * SECONDS_PER_DAY, rating[rated]),
    ]
    who = np.concatenate([p[0] for p in parts])
    what = np.concatenate([p[1] for p in parts])
    kind = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
    when = np.concatenate([p[3] for p in parts])
    value = np.concatenate(
        [p[4] if p[4] is not None else np.full(len(p[0]), np.nan) for p in parts]
    )
    order = np.argsort(when, kind="stable")
    return pa.table(
        {
            "customer_id": people.ids[who[order]],
            "product_id": cat.ids[what[order]],
            "type": kind[order],
            "ts": _timestamps(when[order].astype(np.float64)),
            "session_id": np.char.add(
                "S", (who[order] * 1000 + when[order] // 3600 % 1000).astype(str)
            ),
            "value": pa.array(value[order], mask=np.isnan(value[order])),
        }
    )


# -- stock, sales, relations -------------------------------------------------------------------


def _stock(rng: np.random.Generator, spec: ShopSpec, cat: _Catalogue, lines: _Lines) -> pa.Table:
    n = len(cat.ids)
    recent = lines.day >= spec.days - 28
    daily = np.bincount(lines.product[recent], weights=lines.quantity[recent], minlength=n) / 28
    rows_product, rows_location, on_hand, lead = [], [], [], []
    lead_by_supplier = rng.integers(3, 22, 50)
    for loc in range(spec.locations):
        share = 1 / spec.locations
        cover_days = rng.gamma(2.0, 8.0, n)
        stocked = np.ones(n, bool) if loc == 0 else rng.random(n) < 0.6
        level = np.floor(daily * share * cover_days + rng.poisson(2, n))
        level[rng.random(n) < 0.05] = 0  # stockouts
        rows_product.append(np.flatnonzero(stocked))
        rows_location.append(np.full(stocked.sum(), f"WH-{loc + 1}"))
        on_hand.append(level[stocked].astype(np.int64))
        lead.append(lead_by_supplier[cat.brand[stocked] % 50])
    product = np.concatenate(rows_product)
    updated = (spec.days - 1) * SECONDS_PER_DAY + 23 * 3600
    return pa.table(
        {
            "product_id": cat.ids[product],
            "location_id": np.concatenate(rows_location),
            "on_hand": np.concatenate(on_hand),
            "lead_time_days": np.concatenate(lead),
            "updated_at": _timestamps(np.full(len(product), float(updated))),
        }
    )


def _sales(
    rng: np.random.Generator,
    spec: ShopSpec,
    cat: _Catalogue,
    tax: _Taxonomy,
    promos: _Promotions,
) -> pa.Table:
    """Weekly sales of the shop's physical store (location STORE-1) for its best sellers."""
    best = np.argsort(-cat.popularity)[: min(len(cat.ids), 200)]
    weeks = spec.days // 7
    day_w = _day_weights(spec)
    week_start = np.arange(weeks) * 7
    season_top = tax.leaf_top[cat.leaf[best]]
    mid_days = week_start[:, None] + 3
    season = 1 + tax.season_strength[season_top] * np.cos(
        2 * np.pi * (mid_days - tax.season_phase[season_top]) / 365
    )
    promo = np.stack([promos.lift[s : s + 7, best].max(axis=0) for s in week_start])
    featured = promo > 0.15
    level = cat.popularity[best] * 6
    mean = level * season * day_w[week_start][:, None] * (1 + 3 * promo) * (1 + 0.5 * featured)
    units = rng.poisson(mean)
    exists = cat.created_day[best][None, :] <= week_start[:, None]
    w, p = np.nonzero(exists)
    return pa.table(
        {
            "product_id": cat.ids[best[p]],
            "location_id": np.full(len(p), "STORE-1"),
            "period_start": pa.array(
                [START.toordinal() + int(d) - date(1970, 1, 1).toordinal() for d in week_start[w]],
                type=pa.date32(),
            ),
            "units": units[w, p].astype(np.float64),
            "price": np.round(cat.price[best[p]] * (1 - promo[w, p]), 2),
            "on_promotion": promo[w, p] > 0,
            "featured": featured[w, p],
        }
    )


def _relations(rng: np.random.Generator, cat: _Catalogue, tax: _Taxonomy) -> pa.Table:
    n = len(cat.ids)
    heads, head_types, relations, tail_types, tails = [], [], [], [], []
    # Accessories compatible with a popular product of the same department.
    count = n // 10
    a = rng.integers(0, n, count)
    same_top = [np.flatnonzero(tax.leaf_top[cat.leaf] == t) for t in range(tax.tops)]
    for i in a:
        pool = same_top[tax.leaf_top[cat.leaf[i]]]
        j = pool[rng.integers(0, len(pool))]
        if j != i:
            heads.append(cat.ids[i])
            head_types.append("product")
            relations.append("compatible_with")
            tail_types.append("product")
            tails.append(cat.ids[j])
    for i in range(0, n, 3):
        heads.append(cat.ids[i])
        head_types.append("product")
        relations.append("made_of")
        tail_types.append("material")
        tails.append(str(cat.material[i]))
    for b, brand in enumerate(cat.brand_ids):
        heads.append(brand)
        head_types.append("brand")
        relations.append("based_in")
        tail_types.append("country")
        tails.append(str(COUNTRIES[b % len(COUNTRIES)]))
    return pa.table(
        {
            "head_type": head_types,
            "head_id": heads,
            "relation": relations,
            "tail_type": tail_types,
            "tail_id": tails,
        }
    )


# -- helpers -----------------------------------------------------------------------------------


def _normalise(weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    normalised: np.ndarray = weights / weights.sum()
    return normalised


def _choose_rows(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One column index per row, drawn with that row's probabilities (vectorised)."""
    cdf = np.cumsum(probabilities, axis=1)
    u = rng.random(len(probabilities)) * cdf[:, -1]
    chosen: np.ndarray = np.minimum((cdf < u[:, None]).sum(axis=1), probabilities.shape[1] - 1)
    return chosen


def _timestamps(seconds_from_start: np.ndarray) -> pa.Array:
    epoch = int(datetime(START.year, START.month, START.day, tzinfo=UTC).timestamp())
    return pa.array(
        (np.asarray(seconds_from_start) + epoch).astype(np.int64), type=pa.timestamp("s", tz="UTC")
    )


def _write(path: Path, table: pa.Table) -> int:
    tmp = path.with_suffix(".csv.tmp")
    pacsv.write_csv(table, tmp, write_options=pacsv.WriteOptions(quoting_style="needed"))
    tmp.replace(path)  # a reader never sees half a file
    return int(table.num_rows)
