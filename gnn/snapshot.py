"""The graph as arrays: what every model trains on, exported from Neo4j in streamed batches.

A `GraphSnapshot` holds stable id maps (sorted ids, so the same graph always gives the same
indexes), product and customer facts, the knowledge edges (taxonomy with its hierarchy, brands,
attributes, promotions, segments, `RELATED` triples) and the interactions: one row per order
line with its time. `to_hetero_data` turns it into a PyTorch Geometric `HeteroData`.

Nothing here is derived from aggregated relationships such as `PURCHASED`: those summarise the
whole history, including any test period, so an honest temporal split cannot use them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import neo4j
import numpy as np

from graph.cypher import load_cypher

ProgressFn = Callable[[str, int], None]

#: Node types of the snapshot, in the order `to_hetero_data` creates them.
NODE_TYPES = (
    "customer",
    "product",
    "category",
    "brand",
    "attribute",
    "promotion",
    "entity",
    "segment",
    "region",
)

#: Event relationship types read as interaction edges (each time in their `ts` list is one
#: event). Purchases come from orders; ratings are given after the purchase.
EVENT_KINDS = ("VIEWED", "CLICKED", "ADDED_TO_CART")

#: Knowledge edge sets: name -> (source node type, target node type).
KNOWLEDGE_EDGES: dict[str, tuple[str, str]] = {
    "in_category": ("product", "category"),
    "subcategory_of": ("category", "category"),
    "has_brand": ("product", "brand"),
    "has_attribute": ("product", "attribute"),
    "in_segment": ("customer", "segment"),
    "in_region": ("customer", "region"),
    "promotes_product": ("promotion", "product"),
    "promotes_category": ("promotion", "category"),
    "promotes_brand": ("promotion", "brand"),
    "related_product": ("product", "product"),
    "related_entity": ("product", "entity"),
}


class IdMap:
    """Stable two-way map between graph ids and row indexes (ids sorted)."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.ids: list[str] = sorted(set(ids))
        self.index: dict[str, int] = {key: i for i, key in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, keys: Iterable[str]) -> np.ndarray:
        index = self.index
        return np.fromiter((index[k] for k in keys), dtype=np.int64)


@dataclass
class GraphSnapshot:
    maps: dict[str, IdMap]
    product_price: np.ndarray  # float64, nan when unknown
    product_created_ms: np.ndarray  # int64 epoch millis, -1 when unknown
    product_active: np.ndarray  # bool
    product_name: list[str]
    customer_opted_out: np.ndarray  # bool: personalization = false
    edges: dict[str, tuple[np.ndarray, np.ndarray]]
    # Interactions: one per order line, sorted by time.
    customer: np.ndarray
    product: np.ndarray
    ts_ms: np.ndarray
    quantity: np.ndarray
    # Storefront events (views, clicks, carts; not purchases or ratings), one row per event
    # time: customer, product, kind index into EVENT_KINDS, time. Sorted by time.
    event_customer: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    event_product: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    event_kind: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    event_ts_ms: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    counts: dict[str, int] = field(default_factory=dict)
    ingest_runs: list[str] = field(default_factory=list)
    export_seconds: float = 0.0

    @property
    def n_customers(self) -> int:
        return len(self.maps["customer"])

    @property
    def n_products(self) -> int:
        return len(self.maps["product"])

    def data_hash(self) -> str:
        """A hash of what the models see: ids, knowledge edges and interactions."""
        digest = hashlib.sha256()
        for name in NODE_TYPES:
            digest.update("\x1f".join(self.maps[name].ids).encode())
        for name in sorted(self.edges):
            src, dst = self.edges[name]
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(src).tobytes())
            digest.update(np.ascontiguousarray(dst).tobytes())
        for array in (
            self.customer,
            self.product,
            self.ts_ms,
            self.quantity,
            self.event_customer,
            self.event_product,
            self.event_kind,
            self.event_ts_ms,
        ):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def product_categories(self, with_ancestors: bool = True) -> list[list[int]]:
        """Category indexes per product (leaf categories, plus their ancestors if asked)."""
        src, dst = self.edges["in_category"]
        per_product: list[list[int]] = [[] for _ in range(self.n_products)]
        parents: dict[int, int] = {}
        child, parent = self.edges["subcategory_of"]
        for c, p in zip(child.tolist(), parent.tolist(), strict=True):
            parents[c] = p
        for p, c in zip(src.tolist(), dst.tolist(), strict=True):
            chain = per_product[p]
            node: int | None = c
            seen = 0
            while node is not None and seen < 16:
                if node not in chain:
                    chain.append(node)
                node = parents.get(node) if with_ancestors else None
                seen += 1
        return per_product

    def content_pairs(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The products' content as (product rows, feature columns, width): feature columns are
        the categories with their ancestors, then the brands, then the attributes. The one
        layout the content baseline, the KG-GNN's content encoder and the diversity metric
        share."""
        chains = self.product_categories()
        rows = [np.repeat(np.arange(self.n_products), [len(c) for c in chains])]
        cols = [np.fromiter((c for chain in chains for c in chain), dtype=np.int64)]
        n_cat, n_brand = len(self.maps["category"]), len(self.maps["brand"])
        for name, offset in (("has_brand", n_cat), ("has_attribute", n_cat + n_brand)):
            src, dst = self.edges[name]
            rows.append(src)
            cols.append(dst + offset)
        width = n_cat + n_brand + len(self.maps["attribute"])
        return (
            np.concatenate(rows).astype(np.int64),
            np.concatenate(cols).astype(np.int64),
            width,
        )


# -- export from Neo4j ------------------------------------------------------------------------

_NODE_QUERIES: dict[str, str] = {
    "category": "MATCH (n:Category) RETURN n.category_id AS id",
    "brand": "MATCH (n:Brand) RETURN n.brand_id AS id",
    "attribute": "MATCH (n:Attribute) RETURN n.attribute_id AS id",
    "promotion": "MATCH (n:Promotion) RETURN n.promotion_id AS id",
    "segment": "MATCH (n:Segment) RETURN n.segment_id AS id",
    "region": "MATCH (n:Region) RETURN n.region_id AS id",
}

_EDGE_QUERIES: dict[str, str] = {
    "in_category": "MATCH (a:Product)-[:IN_CATEGORY]->(b:Category) "
    "RETURN a.product_id AS a, b.category_id AS b",
    "subcategory_of": "MATCH (a:Category)-[:SUBCATEGORY_OF]->(b:Category) "
    "RETURN a.category_id AS a, b.category_id AS b",
    "has_brand": "MATCH (a:Product)-[:HAS_BRAND]->(b:Brand) "
    "RETURN a.product_id AS a, b.brand_id AS b",
    "has_attribute": "MATCH (a:Product)-[:HAS_ATTRIBUTE]->(b:Attribute) "
    "RETURN a.product_id AS a, b.attribute_id AS b",
    "in_segment": "MATCH (a:Customer)-[:IN_SEGMENT]->(b:Segment) "
    "RETURN a.customer_id AS a, b.segment_id AS b",
    "in_region": "MATCH (a:Customer)-[:IN_REGION]->(b:Region) "
    "RETURN a.customer_id AS a, b.region_id AS b",
    "promotes_product": "MATCH (a:Promotion)-[:APPLIES_TO]->(b:Product) "
    "RETURN a.promotion_id AS a, b.product_id AS b",
    "promotes_category": "MATCH (a:Promotion)-[:APPLIES_TO]->(b:Category) "
    "RETURN a.promotion_id AS a, b.category_id AS b",
    "promotes_brand": "MATCH (a:Promotion)-[:APPLIES_TO]->(b:Brand) "
    "RETURN a.promotion_id AS a, b.brand_id AS b",
    # Knowledge triples touching a product, in either direction; the other end is a product or
    # another node (an Entity, a supplier, ...) named "Label:key".
    "related_product": "MATCH (a:Product)-[:RELATED]-(b:Product) "
    "RETURN a.product_id AS a, b.product_id AS b",
    "related_entity": "MATCH (a:Product)-[:RELATED]-(b) WHERE NOT b:Product "
    "RETURN a.product_id AS a, labels(b)[0] + ':' + "
    "coalesce(b.entity_id, b.category_id, b.brand_id, b.supplier_id, b.location_id, "
    "b.attribute_id, b.customer_id, elementId(b)) AS b",
}


def export_snapshot(
    driver: neo4j.Driver,
    *,
    database: str,
    batch_size: int = 20_000,
    progress: ProgressFn | None = None,
) -> GraphSnapshot:
    """Reads the graph into arrays, streaming every result in batches of `batch_size` records.

    Interactions are order lines: (customer)-[:PLACED]->(order)-[:CONTAINS]->(product) with the
    order's time and the line's quantity.
    """
    began = time.monotonic()
    report = progress or (lambda _name, _rows: None)

    def stream(query: str, **params: Any) -> Iterable[list[Any]]:
        with driver.session(database=database, fetch_size=batch_size) as session:
            result = session.run(query, params)
            while True:
                records = result.fetch(batch_size)
                if not records:
                    break
                yield [list(r.values()) for r in records]

    products: list[list[Any]] = []
    for batch in stream(load_cypher("gnn", "export_products")):
        products.extend(batch)
        report("products", len(batch))
    customers: list[list[Any]] = []
    for batch in stream(load_cypher("gnn", "export_customers")):
        customers.extend(batch)
        report("customers", len(batch))

    maps: dict[str, IdMap] = {
        "product": IdMap(row[0] for row in products),
        "customer": IdMap(row[0] for row in customers),
    }
    for name, query in _NODE_QUERIES.items():
        maps[name] = IdMap(row[0] for batch in stream(query) for row in batch)

    edge_rows: dict[str, list[tuple[str, str]]] = {}
    for name, query in _EDGE_QUERIES.items():
        edge_rows[name] = [(row[0], row[1]) for batch in stream(query) for row in batch]
        report("knowledge edges", len(edge_rows[name]))
    maps["entity"] = IdMap(b for _, b in edge_rows["related_entity"])

    edges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, rows in edge_rows.items():
        src_type, dst_type = KNOWLEDGE_EDGES[name]
        pairs = sorted(set(rows))
        edges[name] = (
            maps[src_type].lookup(a for a, _ in pairs),
            maps[dst_type].lookup(b for _, b in pairs),
        )

    order = np.argsort(np.array(maps["product"].lookup(row[0] for row in products)))
    products = [products[i] for i in order]
    price = np.array([np.nan if r[1] is None else float(r[1]) for r in products], dtype=np.float64)
    created = np.array([-1 if r[2] is None else int(r[2]) for r in products], dtype=np.int64)
    active = np.array([r[3] is not False for r in products], dtype=bool)
    names = [r[4] or r[0] for r in products]
    customers.sort(key=lambda r: r[0])
    opted_out = np.array([r[1] is False for r in customers], dtype=bool)

    customer_index, product_index = maps["customer"].index, maps["product"].index
    chunks: list[np.ndarray] = []
    for batch in stream(load_cypher("gnn", "export_interactions")):
        chunk = np.empty((len(batch), 4), dtype=np.float64)
        chunk[:, 0] = [customer_index[r[0]] for r in batch]
        chunk[:, 1] = [product_index[r[1]] for r in batch]
        chunk[:, 2] = [r[2] for r in batch]
        chunk[:, 3] = [r[3] for r in batch]
        chunks.append(chunk)
        report("interactions", len(batch))
    lines = np.concatenate(chunks) if chunks else np.empty((0, 4))
    # Sorted by time, then customer and product, so equal graphs give equal arrays.
    sort = np.lexsort((lines[:, 1], lines[:, 0], lines[:, 2]))
    lines = lines[sort]

    event_chunks: list[np.ndarray] = []
    kind_index = {kind: i for i, kind in enumerate(EVENT_KINDS)}
    for batch in stream(load_cypher("gnn", "export_events")):
        sizes = np.fromiter((len(r[3]) for r in batch), dtype=np.int64, count=len(batch))
        chunk = np.empty((int(sizes.sum()), 4), dtype=np.int64)
        chunk[:, 0] = np.repeat([customer_index[r[0]] for r in batch], sizes)
        chunk[:, 1] = np.repeat([product_index[r[1]] for r in batch], sizes)
        chunk[:, 2] = np.repeat([kind_index[r[2]] for r in batch], sizes)
        chunk[:, 3] = [t for r in batch for t in r[3]]
        event_chunks.append(chunk)
        report("events", len(chunk))
    events = np.concatenate(event_chunks) if event_chunks else np.empty((0, 4), np.int64)
    events = events[np.lexsort((events[:, 2], events[:, 1], events[:, 0], events[:, 3]))]

    runs = [
        row[0]
        for batch in stream("MATCH (r:IngestRun) RETURN r.run_id ORDER BY r.started_at")
        for row in batch
    ]
    snapshot = GraphSnapshot(
        maps=maps,
        product_price=price,
        product_created_ms=created,
        product_active=active,
        product_name=names,
        customer_opted_out=opted_out,
        edges=edges,
        customer=lines[:, 0].astype(np.int64),
        product=lines[:, 1].astype(np.int64),
        ts_ms=lines[:, 2].astype(np.int64),
        quantity=lines[:, 3].astype(np.float32),
        event_customer=events[:, 0],
        event_product=events[:, 1],
        event_kind=events[:, 2],
        event_ts_ms=events[:, 3],
        ingest_runs=runs,
    )
    snapshot.counts = {f"nodes.{name}": len(m) for name, m in maps.items()}
    snapshot.counts.update({f"edges.{name}": len(src) for name, (src, _) in edges.items()})
    snapshot.counts["interactions"] = len(snapshot.customer)
    snapshot.counts["events"] = len(snapshot.event_ts_ms)
    snapshot.export_seconds = time.monotonic() - began
    return snapshot


def to_hetero_data(
    snapshot: GraphSnapshot,
    interactions: np.ndarray | None = None,
    events_before: int | None = None,
) -> Any:
    """A PyG `HeteroData` of the snapshot; `interactions` (a boolean mask) limits the bought
    edges and `events_before` (epoch millis) the event edges, for example to a training
    period. Edges get reverse types for message passing."""
    import torch
    from torch_geometric.data import HeteroData

    data = HeteroData()
    for name in NODE_TYPES:
        data[name].num_nodes = len(snapshot.maps[name])
    mask = np.ones(len(snapshot.customer), bool) if interactions is None else interactions
    bought = torch.from_numpy(np.stack([snapshot.customer[mask], snapshot.product[mask]]))
    data["customer", "bought", "product"].edge_index = bought
    data["customer", "bought", "product"].time = torch.from_numpy(snapshot.ts_ms[mask])
    data["customer", "bought", "product"].quantity = torch.from_numpy(snapshot.quantity[mask])
    data["product", "rev_bought", "customer"].edge_index = bought.flip(0)
    for kind_number, kind in enumerate(EVENT_KINDS):
        pick = snapshot.event_kind == kind_number
        if events_before is not None:
            pick &= snapshot.event_ts_ms < events_before
        name = kind.lower()
        index = torch.from_numpy(
            np.stack([snapshot.event_customer[pick], snapshot.event_product[pick]])
        )
        data["customer", name, "product"].edge_index = index
        data["customer", name, "product"].time = torch.from_numpy(snapshot.event_ts_ms[pick])
        data["product", f"rev_{name}", "customer"].edge_index = index.flip(0)
    for name, (src, dst) in snapshot.edges.items():
        src_type, dst_type = KNOWLEDGE_EDGES[name]
        index = torch.from_numpy(np.stack([src, dst]))
        data[src_type, name, dst_type].edge_index = index
        if src_type != dst_type:
            data[dst_type, f"rev_{name}", src_type].edge_index = index.flip(0)
    price = np.nan_to_num(snapshot.product_price, nan=0.0)
    data["product"].price = torch.from_numpy(price)
    data["product"].created_ms = torch.from_numpy(snapshot.product_created_ms)
    return data
