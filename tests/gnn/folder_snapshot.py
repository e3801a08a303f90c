"""In-memory stand-in for `export_snapshot`: builds a GraphSnapshot straight from a synthetic
shop's CSV files, for fast model and metric tests. The integration tests check the real export
against the graph; this helper is only ever used in addition to them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gnn.snapshot import EVENT_KINDS, KNOWLEDGE_EDGES, GraphSnapshot, IdMap

EVENT_TYPES = {"view": "VIEWED", "click": "CLICKED", "add_to_cart": "ADDED_TO_CART"}


def snapshot_from_folder(folder: Path) -> GraphSnapshot:
    products = pd.read_csv(folder / "products.csv", dtype=str)
    customers = pd.read_csv(folder / "customers.csv", dtype=str)
    categories = pd.read_csv(folder / "categories.csv", dtype=str)
    orders = pd.read_csv(folder / "orders.csv", dtype={"customer_id": str, "product_id": str})
    promotions = pd.read_csv(folder / "promotions.csv", dtype=str)
    relations = pd.read_csv(folder / "relations.csv", dtype=str)

    pairs: dict[str, list[tuple[str, str]]] = {name: [] for name in KNOWLEDGE_EDGES}
    for row in products.itertuples():
        for category in str(row.category_ids).split("|"):
            pairs["in_category"].append((row.product_id, category))
        if isinstance(row.brand, str):
            pairs["has_brand"].append((row.product_id, row.brand))
        if isinstance(row.attributes, str):
            for pair in row.attributes.split(";"):
                pairs["has_attribute"].append((row.product_id, pair))
    for row in categories.dropna(subset=["parent_id"]).itertuples():
        pairs["subcategory_of"].append((row.category_id, row.parent_id))
    for row in customers.itertuples():
        pairs["in_segment"].append((row.customer_id, row.segment))
        pairs["in_region"].append((row.customer_id, row.region))
    for row in promotions.itertuples():
        pairs[f"promotes_{row.target_type}"].append((row.promotion_id, row.target_id))
    for row in relations.itertuples():
        if row.head_type == "product" and row.tail_type == "product":
            pairs["related_product"] += [(row.head_id, row.tail_id), (row.tail_id, row.head_id)]
        elif row.head_type == "product":
            pairs["related_entity"].append((row.head_id, f"{row.tail_type}:{row.tail_id}"))

    maps = {
        "customer": IdMap(customers.customer_id),
        "product": IdMap(products.product_id),
        "category": IdMap(categories.category_id),
        "brand": IdMap(b for _, b in pairs["has_brand"]),
        "attribute": IdMap(a for _, a in pairs["has_attribute"]),
        "promotion": IdMap(promotions.promotion_id),
        "entity": IdMap(e for _, e in pairs["related_entity"]),
        "segment": IdMap(s for _, s in pairs["in_segment"]),
        "region": IdMap(r for _, r in pairs["in_region"]),
    }
    edges = {}
    for name, rows in pairs.items():
        src_type, dst_type = KNOWLEDGE_EDGES[name]
        unique = sorted(set(rows))
        edges[name] = (
            maps[src_type].lookup(a for a, _ in unique),
            maps[dst_type].lookup(b for _, b in unique),
        )
    products = products.set_index("product_id").loc[maps["product"].ids]
    ts = _millis(orders.ts)
    customer = maps["customer"].lookup(orders.customer_id)
    product = maps["product"].lookup(orders.product_id)
    order = np.lexsort((product, customer, ts))
    created = _millis(products.created_at)
    events = pd.read_csv(folder / "events.csv", dtype={"customer_id": str, "product_id": str})
    events = events[events.type.isin(list(EVENT_TYPES))]
    kinds = events.type.map(lambda t: EVENT_KINDS.index(EVENT_TYPES[t])).to_numpy(np.int64)
    e_customer = maps["customer"].lookup(events.customer_id)
    e_product = maps["product"].lookup(events.product_id)
    e_ts = _millis(events.ts)
    e_order = np.lexsort((kinds, e_product, e_customer, e_ts))
    return GraphSnapshot(
        maps=maps,
        product_price=products.price.astype(float).to_numpy(),
        product_created_ms=created,
        product_active=np.ones(len(products), bool),
        product_name=products.name.tolist(),
        customer_opted_out=np.zeros(len(maps["customer"]), bool),
        edges=edges,
        customer=customer[order],
        product=product[order],
        ts_ms=ts[order],
        quantity=orders.quantity.to_numpy(np.float32)[order],
        event_customer=e_customer[e_order],
        event_product=e_product[e_order],
        event_kind=kinds[e_order],
        event_ts_ms=e_ts[e_order],
    )


def _millis(values: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(values, utc=True).dt.tz_convert(None)
    return stamps.to_numpy().astype("datetime64[ms]").astype(np.int64)
