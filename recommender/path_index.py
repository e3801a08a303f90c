"""The explanation paths' graph neighbourhood, in memory: what `paths_customer.cypher` and
`paths_anchors.cypher` read, held as arrays in the serving snapshot so that a served list's
paths need no round trip to Neo4j.

It answers with the same rows as those two queries (same patterns, bounds and privacy rules),
so `recommender.explain` scores, diversifies and words them the same way whichever source they
came from:

- a customer's `history` most recent purchases, and what they reach in one hop (category,
  brand, attribute, entity, or a product through a knowledge triple);
- per item: the customer's own purchases, views, clicks, cart adds and ratings of it; bought
  products joined to it by a triple (either direction); bought products sharing a node with it
  (the most recent purchase per shared node); a `co_buyers` sample of its other buyers (the
  most recent ones) and which of them bought a product of the history; one of them in the
  customer's segment.

Privacy as in the queries: an opted-out customer (``personalization = false``) gets no paths;
another customer appears only with ``personalization = true``. The index is as fresh as its
snapshot: an opt-out, a purchase or a new triple reaches paths when the snapshot reloads
(at once in the API process that took the opt-out, within `KGREC_SNAPSHOT_REFRESH_S` in the
others). Every path it yields exists in the graph as of the snapshot; the tests re-check them
with a Cypher MATCH (`recommender.explain.verify_path`).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import neo4j
import numpy as np

from graph.cypher import load_cypher

#: Product link types, coded as in `via_code`.
VIAS = ("IN_CATEGORY", "HAS_BRAND", "HAS_ATTRIBUTE", "RELATED")
RELATED_VIA = VIAS.index("RELATED")
#: The customer's other interactions with a product (the purchases have their own arrays).
INTERACTIONS = ("VIEWED", "CLICKED", "ADDED_TO_CART", "RATED")


@dataclass(frozen=True, slots=True)
class SharedNode:
    """A node products link to (category, brand, attribute, entity, or a product through a
    triple), with its in-degree for one link type."""

    labels: tuple[str, ...]
    shared_id: str
    shared_name: str | None
    key: str | None
    value: Any
    degree: int


def _indptr(owners: np.ndarray, n: int) -> np.ndarray:
    """Where each owner's rows start (and the last one ends) once rows are grouped by owner."""
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owners, minlength=n), out=indptr[1:])
    return indptr


def _csr(owners: np.ndarray, n: int, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows grouped by owner (stable): (indptr, column arrays reordered)."""
    order = np.argsort(owners, kind="stable")
    return (_indptr(owners, n), *(c[order] for c in columns))


@dataclass(frozen=True)
class PathIndex:
    """Arrays over the snapshot's product and customer indexes (see the module docstring).

    Purchases per customer are sorted by product (lookups), buyers per product by last
    purchase, newest first (the co-buyer sample). Links per product point into `nodes`, one
    entry per (node, link type).
    """

    product_ids: Sequence[str]
    product_names: Sequence[str | None]
    product_index: Mapping[str, int]
    customer_ids: Sequence[str]
    customer_index: Mapping[str, int]
    source_allowed: np.ndarray  # bool per customer: personalization is not false
    shown_allowed: np.ndarray  # bool per customer: personalization = true
    buy_ptr: np.ndarray
    buy_product: np.ndarray
    buy_ms: np.ndarray
    buy_count: np.ndarray
    buyer_ptr: np.ndarray
    buyer_customer: np.ndarray
    buyer_ms: np.ndarray
    act_ptr: np.ndarray
    act_product: np.ndarray
    act_type: np.ndarray  # index into INTERACTIONS
    act_count: np.ndarray
    act_ms: np.ndarray
    act_value: Mapping[int, Any]  # the rating value of RATED rows, by position
    link_ptr: np.ndarray
    link_node: np.ndarray
    link_relation: list[str | None]
    nodes: list[SharedNode]
    node_via: np.ndarray  # index into VIAS per node entry
    node_product: np.ndarray  # the product index of a Product node, -1 otherwise
    segment_of: np.ndarray  # per customer: index into `segments` (IN_SEGMENT), -1 when none
    segment_property: Sequence[str | None]  # per customer: the `segment` property
    segments: list[tuple[str, str, int]]  # segment_id, display name, customers in it

    # -- lookups --------------------------------------------------------------------------------
    def _purchases(self, customer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start, stop = self.buy_ptr[customer], self.buy_ptr[customer + 1]
        return (
            self.buy_product[start:stop],
            self.buy_ms[start:stop],
            self.buy_count[start:stop],
        )

    def _purchase_ms(self, customer: int, product: int) -> int | None:
        start, stop = int(self.buy_ptr[customer]), int(self.buy_ptr[customer + 1])
        at = start + int(np.searchsorted(self.buy_product[start:stop], product))
        if at < stop and self.buy_product[at] == product:
            return int(self.buy_ms[at])
        return None

    def _links(self, product: int) -> range:
        return range(int(self.link_ptr[product]), int(self.link_ptr[product + 1]))

    def _co_buyers(self, product: int, exclude: int, limit: int) -> list[tuple[int, int]]:
        """The item's most recent other buyers who may be shown: (customer, purchase ms)."""
        out: list[tuple[int, int]] = []
        start, stop = int(self.buyer_ptr[product]), int(self.buyer_ptr[product + 1])
        for at in range(start, stop):
            other = int(self.buyer_customer[at])
            if other != exclude and self.shown_allowed[other]:
                out.append((other, int(self.buyer_ms[at])))
                if len(out) == limit:
                    break
        return out

    def _shared_row(self, entry: int, relation: str | None) -> dict[str, Any]:
        node = self.nodes[entry]
        return {
            "via": VIAS[self.node_via[entry]],
            "relation": relation,
            "labels": list(node.labels),
            "shared_id": node.shared_id,
            "shared_name": node.shared_name,
            "key": node.key,
            "value": node.value,
            "degree": node.degree,
        }

    def _name(self, product: int) -> str | None:
        return self.product_names[product]

    def _known(self, product_ids: Sequence[str]) -> Iterator[tuple[str, int]]:
        """The requested items the snapshot knows, with their indexes (the queries' MATCH)."""
        for item_id in product_ids:
            item = self.product_index.get(item_id)
            if item is not None:
                yield item_id, item

    # -- the two queries ------------------------------------------------------------------------
    def customer_rows(
        self,
        customer_id: str,
        product_ids: Sequence[str],
        *,
        history: int,
        co_buyers: int,
        per_pattern: int,
    ) -> list[dict[str, Any]]:
        """The rows `paths_customer.cypher` gives for these arguments."""
        c = self.customer_index.get(customer_id)
        if c is None or not self.source_allowed[c]:
            return []
        products, ms, counts = self._purchases(c)
        recent = np.argsort(-ms, kind="stable")[:history]
        hist = [(int(products[i]), int(ms[i]), int(counts[i])) for i in recent]
        hist_at = {p: k for k, (p, _, _) in enumerate(hist)}
        # Reach: (shared node entry, relation) -> the most recent purchase reaching it.
        reach: dict[tuple[int, str | None], int] = {}
        reaches_item: dict[int, list[tuple[int, str | None]]] = {}  # product -> (hist k, relation)
        for k, (p, _, _) in enumerate(hist):
            for at in self._links(p):
                entry = int(self.link_node[at])
                relation = self.link_relation[at]
                key = self._key(entry, relation)
                if key is not None:
                    reach.setdefault(key, k)
                target = int(self.node_product[entry])
                if target >= 0:
                    reaches_item.setdefault(target, []).append((k, relation))
        acts = range(int(self.act_ptr[c]), int(self.act_ptr[c + 1]))
        segment = int(self.segment_of[c])
        rows = []
        for item_id, item in self._known(product_ids):
            rows.append(
                {
                    "item_id": item_id,
                    "item_name": self._name(item),
                    "direct": self._direct(c, item, products, ms, counts, acts),
                    "related": self._related(item, hist, hist_at, reaches_item, per_pattern),
                    "shared": self._customer_shared(item, hist, reach, per_pattern),
                    **self._others(c, item, hist, hist_at, segment, co_buyers, per_pattern),
                }
            )
        return rows

    def _direct(
        self,
        c: int,
        item: int,
        products: np.ndarray,
        ms: np.ndarray,
        counts: np.ndarray,
        acts: range,
    ) -> list[dict[str, Any]]:
        out = []
        at = int(np.searchsorted(products, item))
        if at < len(products) and products[at] == item:
            out.append(
                {
                    "type": "PURCHASED",
                    "count": int(counts[at]),
                    "last_ms": int(ms[at]),
                    "value": None,
                }
            )
        for a in acts:
            if self.act_product[a] == item:
                out.append(
                    {
                        "type": INTERACTIONS[self.act_type[a]],
                        "count": int(self.act_count[a]) if self.act_count[a] >= 0 else None,
                        "last_ms": int(self.act_ms[a]) if self.act_ms[a] >= 0 else None,
                        "value": self.act_value.get(a),
                    }
                )
        return out

    def _related(
        self,
        item: int,
        hist: list[tuple[int, int, int]],
        hist_at: dict[int, int],
        reaches_item: dict[int, list[tuple[int, str | None]]],
        per_pattern: int,
    ) -> list[dict[str, Any]]:
        found: list[tuple[int, str | None, bool]] = [
            (k, relation, True) for k, relation in reaches_item.get(item, [])
        ]
        for at in self._links(item):
            entry = int(self.link_node[at])
            target = int(self.node_product[entry])
            if target >= 0 and target != item and target in hist_at:
                found.append((hist_at[target], self.link_relation[at], False))
        out = []
        for k, relation, outgoing in found[:per_pattern]:
            p, when, count = hist[k]
            out.append(
                {
                    "product_id": self.product_ids[p],
                    "product_name": self._name(p),
                    "count": count,
                    "last_ms": when,
                    "relation": relation,
                    "outgoing": outgoing,
                }
            )
        return out

    def _customer_shared(
        self,
        item: int,
        hist: list[tuple[int, int, int]],
        reach: dict[tuple[int, str | None], int],
        per_pattern: int,
    ) -> list[dict[str, Any]]:
        found: list[tuple[int, int, str | None]] = []
        for at in self._links(item):
            entry = int(self.link_node[at])
            relation = self.link_relation[at]
            k = self._latest(entry, relation, item, hist, reach)
            if k is not None:
                found.append((k, entry, relation))
        found.sort(key=lambda f: -hist[f[0]][1])
        out = []
        for k, entry, relation in found[: per_pattern * 4]:
            p, when, count = hist[k]
            row = self._shared_row(entry, relation)
            row.update(
                product_id=self.product_ids[p],
                product_name=self._name(p),
                count=count,
                last_ms=when,
            )
            out.append(row)
        return out

    def _key(self, entry: int, relation: str | None) -> tuple[int, str | None] | None:
        """What two links must share to meet at a node: the node (and link type), and for a
        triple its relation too; None for a triple without a relation, which meets nothing
        (as in the queries, where `x.relation = null` is never true)."""
        if self.node_via[entry] != RELATED_VIA:
            return (entry, None)
        return None if relation is None else (entry, relation)

    def _latest(
        self,
        entry: int,
        relation: str | None,
        item: int,
        hist: list[tuple[int, int, int]],
        reach: dict[tuple[int, str | None], int],
    ) -> int | None:
        """The most recent history purchase other than the item reaching the node (by the
        same relation for a triple)."""
        key = self._key(entry, relation)
        if key is None:
            return None
        k = reach.get(key)
        if k is None or hist[k][0] != item:
            return k
        # The item itself is the most recent: the next purchase reaching the node, if any.
        for j in range(k + 1, len(hist)):
            p = hist[j][0]
            if p != item and any(
                self._key(int(self.link_node[at]), self.link_relation[at]) == key
                for at in self._links(p)
            ):
                return j
        return None

    def _others(
        self,
        c: int,
        item: int,
        hist: list[tuple[int, int, int]],
        hist_at: dict[int, int],
        segment: int,
        co_buyers: int,
        per_pattern: int,
    ) -> dict[str, list[dict[str, Any]]]:
        others = self._co_buyers(item, c, co_buyers)
        first: dict[int, tuple[int, int]] = {}  # history k -> (other, their purchase of the item)
        for other, theirs in others:
            for p in hist_at.keys() & self._purchases(other)[0].tolist():
                k = hist_at[p]
                if p != item and k not in first:
                    first[k] = (other, theirs)
        together = []
        for k in sorted(first, key=lambda k: -hist[k][1])[:per_pattern]:
            p, when, count = hist[k]
            other, theirs = first[k]
            together.append(
                {
                    "product_id": self.product_ids[p],
                    "product_name": self._name(p),
                    "count": count,
                    "last_ms": when,
                    "other_id": self.customer_ids[other],
                    "link_ms": self._purchase_ms(other, p),
                    "item_ms": theirs,
                    "degree": int(self.buyer_ptr[p + 1] - self.buyer_ptr[p]),
                }
            )
        in_segment = []
        mine = self.segment_property[c]
        if segment >= 0 and mine is not None:
            same = [(o, t) for o, t in others if self.segment_property[o] == mine]
            if same:
                other, theirs = max(same, key=lambda o: o[1])
                if self.segment_of[other] == segment:
                    segment_id, name, degree = self.segments[segment]
                    in_segment.append(
                        {
                            "segment_id": segment_id,
                            "segment_name": name,
                            "other_id": self.customer_ids[other],
                            "item_ms": theirs,
                            "degree": degree,
                        }
                    )
        return {"together": together, "in_segment": in_segment}

    def anchor_rows(
        self,
        anchor_ids: Sequence[str],
        product_ids: Sequence[str],
        *,
        co_buyers: int,
        per_pattern: int,
    ) -> list[dict[str, Any]]:
        """The rows `paths_anchors.cypher` gives for these arguments."""
        product_index = self.product_index
        anchors = [product_index[a] for a in anchor_ids if a in product_index]
        if not anchors:
            return []
        anchor_set = set(anchors)
        reach: dict[tuple[int, str | None], list[int]] = {}
        for a in anchors:
            for at in self._links(a):
                key = self._key(int(self.link_node[at]), self.link_relation[at])
                if key is not None:
                    reach.setdefault(key, []).append(a)
        rows = []
        for item_id, item in self._known(product_ids):
            rows.append(
                {
                    "item_id": item_id,
                    "item_name": self._name(item),
                    "related": self._anchor_related(item, anchors, anchor_set, per_pattern),
                    "shared": self._anchor_shared(item, reach, per_pattern),
                    "together": self._anchor_together(item, anchor_set, co_buyers, per_pattern),
                }
            )
        return rows

    def _anchor_related(
        self, item: int, anchors: list[int], anchor_set: set[int], per_pattern: int
    ) -> list[dict[str, Any]]:
        found: list[tuple[int, str | None, bool]] = []
        for a in anchors:
            if a == item:
                continue
            for at in self._links(a):
                if self.node_product[self.link_node[at]] == item:
                    found.append((a, self.link_relation[at], True))
        for at in self._links(item):
            target = int(self.node_product[self.link_node[at]])
            if target in anchor_set and target != item:
                found.append((target, self.link_relation[at], False))
        return [
            {
                "product_id": self.product_ids[a],
                "product_name": self._name(a),
                "relation": relation,
                "outgoing": outgoing,
            }
            for a, relation, outgoing in found[:per_pattern]
        ]

    def _anchor_shared(
        self, item: int, reach: dict[tuple[int, str | None], list[int]], per_pattern: int
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for at in self._links(item):
            entry = int(self.link_node[at])
            relation = self.link_relation[at]
            key = self._key(entry, relation)
            if key is None:
                continue
            for a in reach.get(key, []):
                if a == item:
                    continue
                if len(out) == per_pattern * 4:
                    return out
                row = self._shared_row(entry, relation)
                row.update(product_id=self.product_ids[a], product_name=self._name(a))
                out.append(row)
        return out

    def _anchor_together(
        self, item: int, anchor_set: set[int], co_buyers: int, per_pattern: int
    ) -> list[dict[str, Any]]:
        first: dict[int, tuple[int, int]] = {}
        for other, theirs in self._co_buyers(item, -1, co_buyers):
            for a in sorted(anchor_set.intersection(self._purchases(other)[0].tolist())):
                if a != item and a not in first:
                    first[a] = (other, theirs)
        out = []
        for a, (other, theirs) in list(first.items())[:per_pattern]:
            out.append(
                {
                    "product_id": self.product_ids[a],
                    "product_name": self._name(a),
                    "other_id": self.customer_ids[other],
                    "link_ms": self._purchase_ms(other, a),
                    "item_ms": theirs,
                    "degree": int(self.buyer_ptr[a + 1] - self.buyer_ptr[a]),
                }
            )
        return out


# -- loading -------------------------------------------------------------------------------------


class Purchases:
    """What customers bought, collected row by row while the snapshot streams its purchases:
    flat typed buffers (no Python object per purchase), turned into the index's arrays."""

    def __init__(self) -> None:
        self.owner = array("q")
        self.product = array("i")
        self.ms = array("q")
        self.count = array("i")

    def add(self, customer: int, rows: Iterable[tuple[int, int | None, int | None]]) -> None:
        """One customer's purchases: (product index, last ms, count)."""
        for product, ms, count in rows:
            self.owner.append(customer)
            self.product.append(product)
            self.ms.append(ms or 0)
            self.count.append(count or 1)


def stream(driver: neo4j.Driver, database: str, name: str) -> Iterator[neo4j.Record]:
    """A query's records one at a time (never all in memory at once: a million small lists
    would fragment the heap long after they are gone)."""
    with driver.session(database=database, default_access_mode=neo4j.READ_ACCESS) as session:
        yield from session.run(load_cypher("recommender", name))


def load_path_index(
    driver: neo4j.Driver,
    *,
    database: str,
    product_ids: Sequence[str],
    product_names: Sequence[str | None],
    product_index: Mapping[str, int],
    customer_ids: Sequence[str],
    customer_index: Mapping[str, int],
    personalization: Sequence[bool | None],
    segment_property: Sequence[str | None],
    purchases: Purchases,
) -> PathIndex:
    """Builds the index from the snapshot's own reads (products, customers, purchases) plus
    three of its own: the customers' other interactions, the products' links with their nodes'
    degrees, the segments."""
    n_products, n_customers = len(product_ids), len(customer_ids)
    own = np.frombuffer(purchases.owner, dtype=np.int64).copy()
    prod = np.frombuffer(purchases.product, dtype=np.int32).copy()
    ms = np.frombuffer(purchases.ms, dtype=np.int64).copy()
    cnt = np.frombuffer(purchases.count, dtype=np.int32).copy()
    # Per customer sorted by product; per product sorted by time, newest first.
    by_customer = np.lexsort((prod, own))
    by_product = np.lexsort((-ms, prod))

    act_owner, act_product, act_type = array("q"), array("i"), array("b")
    act_count, act_ms = array("q"), array("q")
    values: dict[int, Any] = {}  # ratings, by position
    for r in stream(driver, database, "paths_index_interactions"):
        c = customer_index.get(r["customer"])
        if c is None:
            continue
        for p, kind, k, t, v in r["rows"]:
            i = product_index.get(p)
            if i is None:
                continue
            if kind == "RATED" and v is not None:
                values[len(act_owner)] = v
            act_owner.append(c)
            act_product.append(i)
            act_type.append(INTERACTIONS.index(kind))
            act_count.append(-1 if k is None else int(k))
            act_ms.append(-1 if t is None else int(t))
    act_ptr, a_product, a_type, a_count, a_ms, a_order = _csr(
        np.frombuffer(act_owner, dtype=np.int64),
        n_customers,
        np.frombuffer(act_product, dtype=np.int32),
        np.frombuffer(act_type, dtype=np.int8),
        np.frombuffer(act_count, dtype=np.int64),
        np.frombuffer(act_ms, dtype=np.int64),
        np.arange(len(act_owner)),
    )
    moved = np.empty(len(act_owner), dtype=np.int64)
    moved[a_order] = np.arange(len(act_owner))
    ratings = {int(moved[at]): v for at, v in values.items()}

    def run(name: str) -> list[neo4j.Record]:
        return driver.execute_query(load_cypher("recommender", name), database_=database).records

    nodes: list[SharedNode] = []
    node_via: list[int] = []
    node_product: list[int] = []
    link_owner: list[int] = []
    link_node: list[int] = []
    relations: list[str | None] = []
    for r in run("paths_index_links"):
        entry = len(nodes)
        labels = tuple(r["labels"])
        nodes.append(
            SharedNode(
                labels,
                str(r["shared_id"]),
                r["shared_name"],
                r["key"],
                r["value"],
                int(r["degree"]),
            )
        )
        node_via.append(VIAS.index(r["via"]))
        node_product.append(product_index.get(r["shared_id"], -1) if "Product" in labels else -1)
        for link in r["links"]:
            i = product_index.get(link["product_id"])
            if i is not None:
                link_owner.append(i)
                link_node.append(entry)
                relations.append(link["relation"])
    link_ptr, l_node, l_order = _csr(
        np.array(link_owner, dtype=np.int64),
        n_products,
        np.array(link_node, dtype=np.int32),
        np.arange(len(relations)),
    )

    segment_of = np.full(n_customers, -1, dtype=np.int32)
    segments: list[tuple[str, str, int]] = []
    for r in run("paths_index_segments"):
        s = len(segments)
        segments.append((r["segment_id"], r["name"] or r["segment_id"], int(r["degree"])))
        for customer in r["customers"]:
            c = customer_index.get(customer)
            if c is not None and segment_of[c] < 0:
                segment_of[c] = s

    return PathIndex(
        product_ids=product_ids,
        product_names=product_names,
        product_index=product_index,
        customer_ids=customer_ids,
        customer_index=customer_index,
        source_allowed=np.array([p is not False for p in personalization], dtype=bool),
        shown_allowed=np.array([p is True for p in personalization], dtype=bool),
        buy_ptr=_indptr(own, n_customers),
        buy_product=prod[by_customer],
        buy_ms=ms[by_customer],
        buy_count=cnt[by_customer],
        buyer_ptr=_indptr(prod, n_products),
        buyer_customer=own[by_product].astype(np.int32),
        buyer_ms=ms[by_product],
        act_ptr=act_ptr,
        act_product=a_product,
        act_type=a_type,
        act_count=a_count,
        act_ms=a_ms,
        act_value=ratings,
        link_ptr=link_ptr,
        link_node=l_node,
        link_relation=[relations[i] for i in l_order.tolist()],
        nodes=nodes,
        node_via=np.array(node_via, dtype=np.int8),
        node_product=np.array(node_product, dtype=np.int64),
        segment_of=segment_of,
        segment_property=segment_property,
        segments=segments,
    )
