"""Explanation paths: up to N typed graph paths (at most 4 hops) from a customer, or from anchor
products (product page, cart), to each recommended item, scored, diversified and put in words.

The candidate paths of a whole list come from one bounded Cypher round trip
(`paths_customer.cypher`, `paths_anchors.cypher`), or from a `PathSource` giving the same rows
without one (the serving snapshot's `recommender.path_index.PathIndex`); scoring, diversity and
sentences are plain Python, the same for both.

Score of a path, in [0, 1]::

    (w_r * recency + w_s * specificity + w_a * agreement) / (w_r + w_s + w_a)

- recency: ``0.5 ** (age_days / half_life_days)`` of the linking interaction (the customer's
  purchase, view or cart add; for co-buyer paths between anchors, the co-purchase); a path
  with no dated interaction gets ``undated_recency``.
- specificity: ``1 / (1 + ln(degree))`` of the shared node, degree being how many products are
  in the category, of the brand, with the attribute, or how many customers bought the shared
  product or are in the segment: a niche category explains more than "Office Supplies". A path
  without a shared node (the customer viewed the item itself) has specificity 1.
- agreement: the engine's ``agreement(linking_product, item)`` (cosine of the active model's
  vectors), clipped to [0, 1]; ``neutral_agreement`` without a callable or a linking product.

Diversity: the best path of each kind first, then the best remaining, up to N per item; per
shared node only the most recent purchase reaching it is a candidate.
Bounds (`PathLimits`): the customer's `history` most recent purchases, a `co_buyers` sample of
each item's other buyers, `per_pattern` rows per pattern: a request's work does not grow with
the shop (on 50k customers / 10k products / 1M order lines: p50 about 5 ms for 10 items).
Privacy: an opted-out customer (``personalization = false``) gets no paths from their history;
other customers inside a path need ``personalization = true`` (a missing flag is not consent)
and are shown as "another customer", with their id only so the path can be re-checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import neo4j
from neo4j.exceptions import DriverError, Neo4jError

from graph.cypher import load_cypher
from graph.errors import GraphUnavailable

#: The longest path an explanation may show.
MAX_HOPS = 4

# -- kinds of paths ------------------------------------------------------------------------------
# From a customer:
BOUGHT_BEFORE = "bought_before"  # customer bought the item itself
VIEWED = "viewed"  # customer viewed (or clicked) the item
CARTED = "carted"  # customer added the item to a cart
RATED = "rated"  # customer rated the item
BOUGHT_RELATED = "bought_related"  # bought a product joined to the item by a triple
BOUGHT_SAME_CATEGORY = "bought_same_category"
BOUGHT_SAME_BRAND = "bought_same_brand"
BOUGHT_SHARED_ATTRIBUTE = "bought_shared_attribute"
BOUGHT_RELATED_ENTITY = "bought_related_entity"  # both e.g. made of the same material
BOUGHT_TOGETHER = "bought_together"  # another customer bought the same product and the item
SEGMENT_BOUGHT = "segment_bought"  # another customer of the same segment bought the item
# From anchor products:
RELATED = "related"
SAME_CATEGORY = "same_category"
SAME_BRAND = "same_brand"
SHARED_ATTRIBUTE = "shared_attribute"
RELATED_ENTITY = "related_entity"
# BOUGHT_TOGETHER is shared: another customer bought the anchor and the item.

CUSTOMER_KINDS = (
    BOUGHT_BEFORE,
    VIEWED,
    CARTED,
    RATED,
    BOUGHT_RELATED,
    BOUGHT_SAME_CATEGORY,
    BOUGHT_SAME_BRAND,
    BOUGHT_SHARED_ATTRIBUTE,
    BOUGHT_RELATED_ENTITY,
    BOUGHT_TOGETHER,
    SEGMENT_BOUGHT,
)
ANCHOR_KINDS = (
    RELATED,
    SAME_CATEGORY,
    SAME_BRAND,
    SHARED_ATTRIBUTE,
    RELATED_ENTITY,
    BOUGHT_TOGETHER,
)

#: Labels a path may hold, with their key property (an allow-list for `verify_path`).
NODE_KEYS: dict[str, str] = {
    "Customer": "customer_id",
    "Product": "product_id",
    "Category": "category_id",
    "Brand": "brand_id",
    "Attribute": "attribute_id",
    "Entity": "entity_id",
    "Segment": "segment_id",
}
#: Relationship types a path may hold.
RELATIONSHIP_TYPES = frozenset(
    {
        "PURCHASED",
        "VIEWED",
        "CLICKED",
        "ADDED_TO_CART",
        "RATED",
        "IN_CATEGORY",
        "HAS_BRAND",
        "HAS_ATTRIBUTE",
        "RELATED",
        "IN_SEGMENT",
    }
)
#: Relationship properties `verify_path` compares with the graph (times as ISO strings).
VERIFIED_PROPERTIES = ("relation", "count", "value", "last_ts")
_TIME_PROPERTIES = frozenset({"last_ts"})

_DIRECT_KINDS = {
    "PURCHASED": BOUGHT_BEFORE,
    "VIEWED": VIEWED,
    "CLICKED": VIEWED,
    "ADDED_TO_CART": CARTED,
    "RATED": RATED,
}
_SHARED_KINDS = {
    "IN_CATEGORY": (BOUGHT_SAME_CATEGORY, SAME_CATEGORY),
    "HAS_BRAND": (BOUGHT_SAME_BRAND, SAME_BRAND),
    "HAS_ATTRIBUTE": (BOUGHT_SHARED_ATTRIBUTE, SHARED_ATTRIBUTE),
    "RELATED": (BOUGHT_RELATED_ENTITY, RELATED_ENTITY),
}
THIS_CUSTOMER = "this customer"
ANOTHER_CUSTOMER = "another customer"

Agreement = Callable[[str, str], float]


# -- the answer ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathNode:
    """A node of a path: label, key value, and a display name (never personal data)."""

    label: str
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class PathRelationship:
    """A relationship between `nodes[start]` and `nodes[end]` of its path (adjacent indexes),
    pointing from start to end; dates in `properties` are ISO 8601 strings."""

    type: str
    start: int
    end: int
    properties: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PathExplanation:
    """One typed path from the customer (or an anchor product) to the item."""

    kind: str
    nodes: tuple[PathNode, ...]
    relationships: tuple[PathRelationship, ...]
    score: float
    sentence: str

    @property
    def hops(self) -> int:
        return len(self.relationships)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (lists and dicts)."""
        return {
            "kind": self.kind,
            "nodes": [asdict(node) for node in self.nodes],
            "relationships": [
                {
                    "type": rel.type,
                    "start": rel.start,
                    "end": rel.end,
                    "properties": dict(rel.properties),
                }
                for rel in self.relationships
            ],
            "score": self.score,
            "sentence": self.sentence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PathExplanation:
        """The inverse of `to_dict` (e.g. a path read back from an API answer)."""
        return cls(
            kind=data["kind"],
            nodes=tuple(PathNode(n["label"], n["id"], n["name"]) for n in data["nodes"]),
            relationships=tuple(
                PathRelationship(r["type"], r["start"], r["end"], dict(r.get("properties", {})))
                for r in data["relationships"]
            ),
            score=float(data["score"]),
            sentence=data["sentence"],
        )


# -- scoring -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathScoring:
    """Weights and constants of the path score (module docstring)."""

    half_life_days: float = 90.0
    recency_weight: float = 0.4
    specificity_weight: float = 0.4
    agreement_weight: float = 0.2
    undated_recency: float = 0.5
    neutral_agreement: float = 0.5

    def __post_init__(self) -> None:
        if not self.half_life_days > 0:
            raise ValueError(f"half_life_days: must be > 0, got {self.half_life_days}")
        weights = (self.recency_weight, self.specificity_weight, self.agreement_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"weights: must be >= 0 with a positive sum, got {weights}")
        for name in ("undated_recency", "neutral_agreement"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name}: must be within [0, 1], got {value}")


@dataclass(frozen=True)
class PathLimits:
    """Bounds of the Cypher patterns: they keep one request's work small on any shop."""

    # Measured on the 1M-line shop, 16 clients, served top-10 lists: 30/20 gave 315 lists/s
    # (p99 108 ms), 15/10 gave 405 lists/s (p99 76 ms) with as many paths per list (29.4).
    history: int = 15  # most recent purchases a customer path may start from
    co_buyers: int = 10  # sample of the item's other buyers, per item
    per_pattern: int = 4  # rows per pattern and item (shared nodes: 4x this)

    def __post_init__(self) -> None:
        for name in ("history", "co_buyers", "per_pattern"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a whole number >= 1, got {value!r}")


def recency(when: datetime | None, now: datetime, scoring: PathScoring) -> float:
    """Exponential decay of an interaction's age (1 today, 0.5 after one half-life); future
    times count as today, no time as `undated_recency`."""
    if when is None:
        return scoring.undated_recency
    age_days = max((now - when).total_seconds(), 0.0) / 86_400
    return math.exp(-math.log(2) * age_days / scoring.half_life_days)


def specificity(degree: int | None) -> float:
    """How much a shared node says: 1 for a node of one (or no shared node), falling with the
    log of its degree (14 products: 0.27; 5,000 products: 0.11)."""
    if degree is None or degree <= 1:
        return 1.0
    return 1.0 / (1.0 + math.log(degree))


def path_score(
    recency_value: float,
    specificity_value: float,
    agreement_value: float | None,
    scoring: PathScoring,
) -> float:
    """The weighted mean of the three terms (module docstring); agreement None is neutral."""
    agree = scoring.neutral_agreement if agreement_value is None else agreement_value
    agree = min(max(agree, 0.0), 1.0) if math.isfinite(agree) else scoring.neutral_agreement
    total = scoring.recency_weight + scoring.specificity_weight + scoring.agreement_weight
    return (
        scoring.recency_weight * recency_value
        + scoring.specificity_weight * specificity_value
        + scoring.agreement_weight * agree
    ) / total


class _Ranked(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def score(self) -> float: ...


RankedT = TypeVar("RankedT", bound=_Ranked)


def select_diverse(paths: Iterable[RankedT], n: int) -> list[RankedT]:
    """Up to `n` paths: the best of each kind first (best kinds first), then the best of the
    rest; returned best first. Ties keep the input order."""
    ordered = sorted(paths, key=lambda p: -p.score)
    chosen: list[RankedT] = []
    kinds: set[str] = set()
    for path in ordered:
        if len(chosen) == n:
            break
        if path.kind not in kinds:
            kinds.add(path.kind)
            chosen.append(path)
    if len(chosen) < n:
        taken = {id(p) for p in chosen}
        chosen.extend(p for p in ordered if id(p) not in taken)
        chosen = chosen[:n]
    chosen.sort(key=lambda p: -p.score)
    return chosen


# -- sentences -----------------------------------------------------------------------------------


def _day(when: datetime | None) -> str:
    return "an unknown date" if when is None else when.date().isoformat()


def _how_often(count: int | None, when: datetime | None) -> str:
    if count is not None and count > 1:
        return f" {count} times, last on {_day(when)}"
    return f" on {_day(when)}"


def _products(degree: int | None, noun: str = "products") -> str:
    if degree is None:
        return ""
    return f" ({degree:,} {noun[:-1] if degree == 1 else noun})"


def _words(relation: str | None) -> str:
    return (relation or "related to").replace("_", " ")


def interaction_sentence(
    kind: str, item: str, when: datetime | None, count: int | None, value: Any = None
) -> str:
    """The customer's own interaction with the item, e.g. "Viewed Blue Pen 3 times, last on
    2024-05-02"."""
    if kind == BOUGHT_BEFORE:
        return f"Bought {item}{_how_often(count, when)}"
    if kind == CARTED:
        return f"Added {item} to the cart{_how_often(count, when)}"
    if kind == RATED:
        rating = "" if value is None else f" {value:g}" if isinstance(value, float) else f" {value}"
        return f"Rated {item}{rating} on {_day(when)}"
    return f"Viewed {item}{_how_often(count, when)}"


def shared_sentence(
    via: str,
    product: str,
    when: datetime | None,
    shared: str,
    degree: int | None,
    relation: str | None = None,
    item: str | None = None,
    count: int | None = None,
) -> str:
    """A bought (or anchor) product and the item sharing a node, e.g. "Bought Blue Ink Pen on
    2023-04-02; same category Fountain Pens (14 products)"; without `when` (anchors):
    "Blue Ink Pen and Red Pen: same category Fountain Pens (14 products)"."""
    if via == "IN_CATEGORY":
        tail = f"same category {shared}{_products(degree)}"
    elif via == "HAS_BRAND":
        tail = f"same brand {shared}{_products(degree)}"
    elif via == "HAS_ATTRIBUTE":
        tail = f"same {shared}{_products(degree)}"
    else:
        tail = f"both {_words(relation)} {shared}{_products(degree)}"
    if item is not None:
        return f"{product} and {item}: {tail}"
    return f"Bought {product}{_how_often(count, when)}; {tail}"


def related_sentence(
    product: str,
    item: str,
    relation: str | None,
    outgoing: bool,
    when: datetime | None,
    bought: bool,
    count: int | None = None,
) -> str:
    """A triple between a bought (or anchor) product and the item, e.g. "Bought Phone case on
    2023-04-02; Phone case is compatible with Smartphone X"."""
    head, tail = (product, item) if outgoing else (item, product)
    fact = f"{head} is {_words(relation)} {tail}"
    return f"Bought {product}{_how_often(count, when)}; {fact}" if bought else fact


def together_sentence(
    product: str,
    item: str,
    when: datetime | None,
    degree: int | None,
    bought: bool,
    count: int | None = None,
) -> str:
    """A co-buyer path, e.g. "Bought Paper A4 on 2023-04-01; another of its 12 buyers also
    bought Ring binder", or from an anchor "Another of the 12 buyers of Paper A4 also bought
    Ring binder (last on 2023-04-01)"."""
    buyers = "buyer" if degree is None else f"of {'its' if bought else 'the'} {degree:,} buyers"
    if bought:
        return f"Bought {product}{_how_often(count, when)}; another {buyers} also bought {item}"
    return f"Another {buyers} of {product} also bought {item} (last on {_day(when)})"


def segment_sentence(segment: str, degree: int | None, item: str, when: datetime | None) -> str:
    """A same-segment path, e.g. "Another customer in segment Consumer (1,200 customers) bought
    Paper A4 on 2023-04-01"."""
    return (
        f"Another customer in segment {segment}{_products(degree, 'customers')} bought "
        f"{item} on {_day(when)}"
    )


# -- building paths from the query's rows --------------------------------------------------------


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _props(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _shared_node(row: Mapping[str, Any]) -> PathNode:
    label = next((lab for lab in row["labels"] if lab in NODE_KEYS), row["labels"][0])
    if label == "Attribute" and row.get("key") is not None:
        name = f"{row['key']}: {row['value']}"
    else:
        name = str(row["shared_name"])
    return PathNode(label, str(row["shared_id"]), name)


Built = tuple[tuple[PathNode, ...], tuple[PathRelationship, ...], str]


@dataclass(slots=True)
class _Candidate:
    """A path found by the query, scored before it is built (only the chosen are built)."""

    kind: str
    when: datetime | None
    degree: int | None
    link_product: str | None
    row: Mapping[str, Any]
    builder: Callable[[PathNode, PathNode, Mapping[str, Any], datetime | None], Built]
    score: float = 0.0

    def build(self, origin: PathNode, item: PathNode) -> Built:
        return self.builder(origin, item, self.row, self.when)


def _product(row: Mapping[str, Any]) -> PathNode:
    return PathNode("Product", row["product_id"], row["product_name"] or row["product_id"])


def _purchase(row: Mapping[str, Any], when: datetime | None) -> PathRelationship:
    return PathRelationship("PURCHASED", 0, 1, _props(count=row["count"], last_ts=_iso(when)))


def _build_direct(
    me: PathNode, item: PathNode, d: Mapping[str, Any], when: datetime | None
) -> Built:
    rated = d["type"] == "RATED"
    rel = PathRelationship(
        d["type"],
        0,
        1,
        _props(count=d["count"], last_ts=_iso(when), value=d["value"] if rated else None),
    )
    text = interaction_sentence(_DIRECT_KINDS[d["type"]], item.name, when, d["count"], d["value"])
    return (me, item), (rel,), text


def _build_related(
    me: PathNode, item: PathNode, r: Mapping[str, Any], when: datetime | None
) -> Built:
    product = _product(r)
    start, end = (1, 2) if r["outgoing"] else (2, 1)
    rels = (
        _purchase(r, when),
        PathRelationship("RELATED", start, end, {"relation": r["relation"]}),
    )
    text = related_sentence(
        product.name, item.name, r["relation"], r["outgoing"], when, bought=True, count=r["count"]
    )
    return (me, product, item), rels, text


def _build_shared(
    me: PathNode, item: PathNode, s: Mapping[str, Any], when: datetime | None
) -> Built:
    product, shared = _product(s), _shared_node(s)
    link = _props(relation=s["relation"])
    rels = (
        _purchase(s, when),
        PathRelationship(s["via"], 1, 2, link),
        PathRelationship(s["via"], 3, 2, dict(link)),
    )
    text = shared_sentence(
        s["via"], product.name, when, shared.name, s["degree"], s["relation"], count=s["count"]
    )
    return (me, product, shared, item), rels, text


def _build_together(
    me: PathNode, item: PathNode, t: Mapping[str, Any], when: datetime | None
) -> Built:
    product = _product(t)
    other = PathNode("Customer", t["other_id"], ANOTHER_CUSTOMER)
    rels = (
        _purchase(t, when),
        PathRelationship("PURCHASED", 2, 1, _props(last_ts=_iso(_time(t["link_ms"])))),
        PathRelationship("PURCHASED", 2, 3, _props(last_ts=_iso(_time(t["item_ms"])))),
    )
    text = together_sentence(product.name, item.name, when, t["degree"], True, t["count"])
    return (me, product, other, item), rels, text


def _build_segment(
    me: PathNode, item: PathNode, g: Mapping[str, Any], when: datetime | None
) -> Built:
    segment = PathNode("Segment", g["segment_id"], g["segment_name"])
    other = PathNode("Customer", g["other_id"], ANOTHER_CUSTOMER)
    rels = (
        PathRelationship("IN_SEGMENT", 0, 1, {}),
        PathRelationship("IN_SEGMENT", 2, 1, {}),
        PathRelationship("PURCHASED", 2, 3, _props(last_ts=_iso(when))),
    )
    text = segment_sentence(segment.name, g["degree"], item.name, when)
    return (me, segment, other, item), rels, text


def _build_anchor_related(
    _: PathNode, item: PathNode, r: Mapping[str, Any], when: datetime | None
) -> Built:
    anchor = _product(r)
    start, end = (0, 1) if r["outgoing"] else (1, 0)
    rel = PathRelationship("RELATED", start, end, {"relation": r["relation"]})
    text = related_sentence(
        anchor.name, item.name, r["relation"], r["outgoing"], None, bought=False
    )
    return (anchor, item), (rel,), text


def _build_anchor_shared(
    _: PathNode, item: PathNode, s: Mapping[str, Any], when: datetime | None
) -> Built:
    anchor, shared = _product(s), _shared_node(s)
    link = _props(relation=s["relation"])
    rels = (PathRelationship(s["via"], 0, 1, link), PathRelationship(s["via"], 2, 1, dict(link)))
    text = shared_sentence(
        s["via"], anchor.name, None, shared.name, s["degree"], s["relation"], item=item.name
    )
    return (anchor, shared, item), rels, text


def _build_anchor_together(
    _: PathNode, item: PathNode, t: Mapping[str, Any], when: datetime | None
) -> Built:
    anchor = _product(t)
    other = PathNode("Customer", t["other_id"], ANOTHER_CUSTOMER)
    rels = (
        PathRelationship("PURCHASED", 1, 0, _props(last_ts=_iso(_time(t["link_ms"])))),
        PathRelationship("PURCHASED", 1, 2, _props(last_ts=_iso(_time(t["item_ms"])))),
    )
    text = together_sentence(anchor.name, item.name, when, t["degree"], bought=False)
    return (anchor, other, item), rels, text


def _customer_candidates(row: Mapping[str, Any]) -> list[_Candidate]:
    """Every candidate path of one item, from one row of `paths_customer.cypher`."""
    out = [
        _Candidate(_DIRECT_KINDS[d["type"]], _time(d["last_ms"]), None, None, d, _build_direct)
        for d in row["direct"]
    ]
    out += [
        _Candidate(BOUGHT_RELATED, _time(r["last_ms"]), None, r["product_id"], r, _build_related)
        for r in row["related"]
    ]
    out += [
        _Candidate(
            _SHARED_KINDS[s["via"]][0],
            _time(s["last_ms"]),
            s["degree"],
            s["product_id"],
            s,
            _build_shared,
        )
        for s in row["shared"]
    ]
    out += [
        _Candidate(
            BOUGHT_TOGETHER, _time(t["last_ms"]), t["degree"], t["product_id"], t, _build_together
        )
        for t in row["together"]
    ]
    out += [
        _Candidate(SEGMENT_BOUGHT, _time(g["item_ms"]), g["degree"], None, g, _build_segment)
        for g in row["in_segment"]
    ]
    return out


def _anchor_candidates(row: Mapping[str, Any]) -> list[_Candidate]:
    """Every candidate path of one item, from one row of `paths_anchors.cypher`."""
    out = [
        _Candidate(RELATED, None, None, r["product_id"], r, _build_anchor_related)
        for r in row["related"]
    ]
    out += [
        _Candidate(
            _SHARED_KINDS[s["via"]][1], None, s["degree"], s["product_id"], s, _build_anchor_shared
        )
        for s in row["shared"]
    ]
    for t in row["together"]:
        # Both purchases had happened by the earlier of the two last purchase times.
        dated = [w for w in (_time(t["link_ms"]), _time(t["item_ms"])) if w is not None]
        when = min(dated) if dated else None
        out.append(
            _Candidate(
                BOUGHT_TOGETHER, when, t["degree"], t["product_id"], t, _build_anchor_together
            )
        )
    return out


# -- the explainer -------------------------------------------------------------------------------


def _ids(value: Sequence[str], field: str) -> list[str]:
    """Distinct non-empty ids in order; a clear error naming the field otherwise."""
    if isinstance(value, str):
        raise ValueError(f"{field}: must be a list of ids, not one string")
    out: list[str] = []
    for i, pid in enumerate(value):
        if not isinstance(pid, str) or not pid:
            raise ValueError(f"{field}[{i}]: must be a non-empty string, got {pid!r}")
        if pid not in out:
            out.append(pid)
    return out


class PathSource(Protocol):
    """Where a list's candidate paths come from instead of the graph: the rows of
    `paths_customer.cypher` / `paths_anchors.cypher` for the same arguments (the serving
    snapshot's `recommender.path_index.PathIndex`)."""

    def customer_rows(
        self,
        customer_id: str,
        product_ids: Sequence[str],
        *,
        history: int,
        co_buyers: int,
        per_pattern: int,
    ) -> Sequence[Mapping[str, Any]]: ...

    def anchor_rows(
        self,
        anchor_ids: Sequence[str],
        product_ids: Sequence[str],
        *,
        co_buyers: int,
        per_pattern: int,
    ) -> Sequence[Mapping[str, Any]]: ...


class Explainer:
    """Explanation paths for recommended items, read from the graph with bounded queries, or
    from an in-memory `PathSource` with the same patterns and bounds.

    Args:
        driver: the process's Neo4j driver (never created here); None when every call passes
            a `source`.
        database: the database to read.
        per_item: at most this many paths per item.
        scoring: the score's weights and half-life.
        limits: the query's bounds.
        now: the clock for recency (tests pin it).
    """

    def __init__(
        self,
        driver: neo4j.Driver | None,
        database: str,
        per_item: int = 3,
        *,
        scoring: PathScoring | None = None,
        limits: PathLimits | None = None,
        now: Callable[[], datetime] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if not isinstance(per_item, int) or per_item < 1:
            raise ValueError(f"per_item: must be a whole number >= 1, got {per_item!r}")
        self._driver = driver
        self._database = database
        self.per_item = per_item
        self.scoring = scoring or PathScoring()
        self.limits = limits or PathLimits()
        self._now = now or (lambda: datetime.now(UTC))
        # Server-side deadline of a path read: a Neo4j that is warming up (cold page cache and
        # plan cache after a restart) or overloaded fails the read instead of holding the list.
        self.timeout_s = timeout_s

    def for_customer(
        self,
        customer_id: str,
        product_ids: Sequence[str],
        *,
        agreement: Agreement | None = None,
        source: PathSource | None = None,
    ) -> dict[str, list[PathExplanation]]:
        """Paths from the customer to each product; every requested id is a key (an empty list
        when nothing links them, the customer is unknown or opted out). From `source` when
        given, else from the graph."""
        if not isinstance(customer_id, str) or not customer_id:
            raise ValueError(f"customer_id: must be a non-empty string, got {customer_id!r}")
        items = _ids(product_ids, "product_ids")
        result: dict[str, list[PathExplanation]] = {pid: [] for pid in items}
        if not items:
            return result
        bounds = {
            "history": self.limits.history,
            "co_buyers": self.limits.co_buyers,
            "per_pattern": self.limits.per_pattern,
        }
        if source is not None:
            rows = source.customer_rows(customer_id, items, **bounds)
        else:
            rows = self._read(
                "paths_customer", customer_id=customer_id, product_ids=items, **bounds
            )
        now = self._now()
        me = PathNode("Customer", customer_id, THIS_CUSTOMER)
        for row in rows:
            item = PathNode("Product", row["item_id"], row["item_name"] or row["item_id"])
            candidates = _customer_candidates(row)
            result[item.id] = self._choose(me, item, candidates, now, agreement)
        return result

    def for_anchors(
        self,
        anchor_product_ids: Sequence[str],
        product_ids: Sequence[str],
        *,
        agreement: Agreement | None = None,
        source: PathSource | None = None,
    ) -> dict[str, list[PathExplanation]]:
        """Paths from the anchor products (product page, cart) to each product; every
        requested id is a key. From `source` when given, else from the graph."""
        anchors = _ids(anchor_product_ids, "anchor_product_ids")
        items = _ids(product_ids, "product_ids")
        result: dict[str, list[PathExplanation]] = {pid: [] for pid in items}
        if not items or not anchors:
            return result
        bounds = {"co_buyers": self.limits.co_buyers, "per_pattern": self.limits.per_pattern}
        if source is not None:
            rows = source.anchor_rows(anchors, items, **bounds)
        else:
            rows = self._read("paths_anchors", anchor_ids=anchors, product_ids=items, **bounds)
        now = self._now()
        for row in rows:
            item = PathNode("Product", row["item_id"], row["item_name"] or row["item_id"])
            # The origin of an anchor path is its own anchor, set by its builder.
            result[item.id] = self._choose(item, item, _anchor_candidates(row), now, agreement)
        return result

    def _choose(
        self,
        origin: PathNode,
        item: PathNode,
        candidates: list[_Candidate],
        now: datetime,
        agreement: Agreement | None,
    ) -> list[PathExplanation]:
        """Scores every candidate, keeps a diverse best `per_item`, and builds only those."""
        agreed: dict[str, float] = {}
        for c in candidates:
            agree: float | None = None
            if agreement is not None and c.link_product is not None:
                if c.link_product not in agreed:
                    agreed[c.link_product] = float(agreement(c.link_product, item.id))
                agree = agreed[c.link_product]
            c.score = path_score(
                recency(c.when, now, self.scoring), specificity(c.degree), agree, self.scoring
            )
        out: list[PathExplanation] = []
        for c in select_diverse(candidates, self.per_item):
            nodes, rels, sentence = c.build(origin, item)
            out.append(PathExplanation(c.kind, nodes, rels, round(c.score, 6), sentence))
        return out

    def _read(self, name: str, **params: Any) -> list[neo4j.Record]:
        if self._driver is None:
            raise GraphUnavailable("no Neo4j driver to read explanation paths with")
        # One attempt in an auto-commit transaction: `execute_query` would retry for up to 30 s
        # while Neo4j is down, and a list must rather go out without paths than wait.
        try:
            with self._driver.session(
                database=self._database, default_access_mode=neo4j.READ_ACCESS
            ) as session:
                query = neo4j.Query(load_cypher("recommender", name), timeout=self.timeout_s)
                records = list(session.run(query, params))
        except (DriverError, Neo4jError, OSError) as exc:
            raise GraphUnavailable(f"cannot read explanation paths from Neo4j: {exc}") from exc
        return records


# -- re-checking a path --------------------------------------------------------------------------


def _verify_query(path: PathExplanation) -> tuple[str, dict[str, Any]]:
    """The MATCH of one path, from allow-listed labels, keys and types; values as parameters."""
    nodes, rels = path.nodes, path.relationships
    if not 1 <= len(rels) <= MAX_HOPS or len(nodes) != len(rels) + 1:
        raise ValueError(
            f"path: needs 1 to {MAX_HOPS} relationships and one node more, "
            f"got {len(nodes)} nodes and {len(rels)} relationships"
        )
    parts: list[str] = []
    for i, node in enumerate(nodes):
        key = NODE_KEYS.get(node.label)
        if key is None:
            raise ValueError(f"nodes[{i}].label: {node.label!r} is not a path label")
        parts.append(f"(n{i}:{node.label} {{{key}: $ids[{i}]}})")
    pattern = parts[0]
    conditions: list[str] = []
    properties: list[dict[str, Any]] = []
    for j, rel in enumerate(rels):
        if rel.type not in RELATIONSHIP_TYPES:
            raise ValueError(f"relationships[{j}].type: {rel.type!r} is not a path type")
        if (rel.start, rel.end) == (j, j + 1):
            pattern += f"-[r{j}:{rel.type}]->{parts[j + 1]}"
        elif (rel.start, rel.end) == (j + 1, j):
            pattern += f"<-[r{j}:{rel.type}]-{parts[j + 1]}"
        else:
            raise ValueError(
                f"relationships[{j}]: must join nodes {j} and {j + 1}, got {rel.start} -> {rel.end}"
            )
        checked = {k: rel.properties[k] for k in VERIFIED_PROPERTIES if k in rel.properties}
        properties.append(checked)
        for k in checked:
            if k in _TIME_PROPERTIES:
                conditions.append(f"r{j}.{k} = datetime($properties[{j}].{k})")
            else:
                conditions.append(f"r{j}.{k} = $properties[{j}].{k}")
    query = (
        load_cypher("recommender", "paths_verify")
        .replace("<<pattern>>", pattern)
        .replace("<<conditions>>", " AND ".join(conditions) or "true")
    )
    return query, {"ids": [node.id for node in nodes], "properties": properties}


def verify_path(driver: neo4j.Driver, database: str, path: PathExplanation) -> bool:
    """Whether the path exists in the graph as returned: every node (label and key), every
    relationship (type and direction) and its relation, count, value and last time."""
    query, params = _verify_query(path)
    try:
        records, _, _ = driver.execute_query(
            query, params, database_=database, routing_=neo4j.RoutingControl.READ
        )
    except (DriverError, Neo4jError, OSError) as exc:
        raise GraphUnavailable(f"cannot re-check an explanation path in Neo4j: {exc}") from exc
    return bool(records[0]["found"])
