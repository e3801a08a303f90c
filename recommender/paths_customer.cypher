// Explanation paths from one customer to each product of $product_ids, in one round trip.
// Starts from the unique keys (customer_id, product_id). Nodes that can be dense (a popular
// product's buyers, a category's products, a segment's customers) are never expanded in full:
// their patterns run from the small side, or are capped with LIMIT ($history, $co_buyers,
// $per_pattern). An opted-out source customer matches nothing (no paths from their history);
// other customers appear only with personalization = true, and only as ids.
MATCH (c:Customer {customer_id: $customer_id})
WHERE coalesce(c.personalization, true)
// The most recent purchases: the only history a path may start from.
CALL (c) {
  MATCH (c)-[r:PURCHASED]->(p:Product)
  WITH p, r
  ORDER BY r.last_ts DESC
  LIMIT $history
  RETURN collect({p: p, r: r}) AS history, collect(p) AS bought
}
// What the history reaches in one hop (categories, brands, attributes, triples), most recent
// purchase first: read once, matched against every item below without touching the store.
CALL (history) {
  UNWIND history AS h
  WITH h.p AS p, h.r AS r
  MATCH (p)-[l:IN_CATEGORY|HAS_BRAND|HAS_ATTRIBUTE|RELATED]->(shared)
  WHERE NOT shared:Customer
  RETURN collect({p: p, r: r, shared: shared, via: type(l), relation: l.relation}) AS reach
}
CALL (c) {
  OPTIONAL MATCH (c)-[:IN_SEGMENT]->(s:Segment)
  RETURN s AS segment
  LIMIT 1
}
UNWIND $product_ids AS item_id
MATCH (item:Product {product_id: item_id})
// 1 hop: the customer's own purchases, views, cart adds and ratings of the item.
CALL (c, item) {
  MATCH (c)-[r:PURCHASED|VIEWED|CLICKED|ADDED_TO_CART|RATED]->(item)
  RETURN collect({type: type(r), count: r.count, last_ms: r.last_ts.epochMillis, value: r.value}) AS direct
}
// 2 hops: a bought product and the item joined by a knowledge triple (e.g. compatible_with),
// in either direction.
CALL (item, history, bought, reach) {
  WITH item, history, reach,
       [(item)-[rel:RELATED]->(p:Product) WHERE p IN bought AND p <> item | {p: p, relation: rel.relation}] AS incoming
  WITH [x IN reach WHERE x.shared = item AND x.via = 'RELATED' | {p: x.p, r: x.r, relation: x.relation, outgoing: true}]
       + [y IN incoming | {p: y.p, r: [h IN history WHERE h.p = y.p][0].r, relation: y.relation, outgoing: false}] AS found
  UNWIND found[..$per_pattern] AS f
  RETURN collect({
    product_id: f.p.product_id, product_name: f.p.name, count: f.r.count,
    last_ms: f.r.last_ts.epochMillis, relation: f.relation, outgoing: f.outgoing
  }) AS related
}
// 3 hops: a bought product and the item share a category, brand, attribute or entity; per
// shared node the most recent purchase reaching it.
CALL (item, reach) {
  MATCH (item)-[l:IN_CATEGORY|HAS_BRAND|HAS_ATTRIBUTE|RELATED]->(shared)
  WHERE NOT shared:Customer
  WITH item, shared, type(l) AS via, l.relation AS relation, reach
  WITH shared, via, relation,
       [x IN reach WHERE x.shared = shared AND x.via = via AND x.p <> item
                         AND (via <> 'RELATED' OR x.relation = relation)][0] AS latest
  WHERE latest IS NOT NULL
  WITH shared, via, relation, latest
  ORDER BY latest.r.last_ts DESC
  LIMIT $per_pattern * 4
  RETURN collect({
    via: via, relation: relation, product_id: latest.p.product_id, product_name: latest.p.name,
    count: latest.r.count, last_ms: latest.r.last_ts.epochMillis, labels: labels(shared),
    shared_id: coalesce(shared.category_id, shared.brand_id, shared.attribute_id, shared.entity_id, shared.product_id),
    shared_name: coalesce(shared.name, shared.attribute_id), key: shared.key, value: shared.value,
    degree: CASE via
      WHEN 'IN_CATEGORY' THEN COUNT { (shared)<-[:IN_CATEGORY]-() }
      WHEN 'HAS_BRAND' THEN COUNT { (shared)<-[:HAS_BRAND]-() }
      WHEN 'HAS_ATTRIBUTE' THEN COUNT { (shared)<-[:HAS_ATTRIBUTE]-() }
      ELSE COUNT { (shared)<-[:RELATED]-() } END
  }) AS shared
}
// A capped sample of the item's other buyers (opted in), used by the next two patterns.
CALL (c, item) {
  MATCH (item)<-[theirs:PURCHASED]-(other:Customer)
  WHERE other <> c AND other.personalization = true
  WITH other, theirs
  LIMIT $co_buyers
  RETURN collect({other: other, theirs: theirs}) AS others
}
// 3 hops: another customer bought a product the customer bought, and the item.
CALL (item, history, bought, others) {
  UNWIND others AS o
  WITH o.other AS other, o.theirs AS theirs, item, history, bought
  MATCH (other)-[their_link:PURCHASED]->(p:Product)
  WHERE p IN bought AND p <> item
  WITH p, head(collect({other: other, theirs: theirs, their_link: their_link})) AS co, history
  WITH p, co, [h IN history WHERE h.p = p][0].r AS r
  ORDER BY r.last_ts DESC
  LIMIT $per_pattern
  RETURN collect({
    product_id: p.product_id, product_name: p.name, count: r.count, last_ms: r.last_ts.epochMillis,
    other_id: co.other.customer_id, link_ms: co.their_link.last_ts.epochMillis,
    item_ms: co.theirs.last_ts.epochMillis, degree: COUNT { (p)<-[:PURCHASED]-() }
  }) AS together
}
// 3 hops: another customer of the same segment bought the item (the weakest, broadest path).
// The segment property (written with IN_SEGMENT) picks the co-buyer; the one chosen is then
// matched through the relationship itself.
CALL (c, segment, others) {
  UNWIND others AS o
  WITH o.other AS other, o.theirs AS theirs, segment, c
  WHERE segment IS NOT NULL AND other.segment = c.segment
  WITH other, theirs, segment
  ORDER BY theirs.last_ts DESC
  LIMIT 1
  MATCH (other)-[:IN_SEGMENT]->(segment)
  RETURN collect({
    segment_id: segment.segment_id, segment_name: coalesce(segment.name, segment.segment_id),
    other_id: other.customer_id, item_ms: theirs.last_ts.epochMillis,
    degree: COUNT { (segment)<-[:IN_SEGMENT]-() }
  }) AS in_segment
}
RETURN item.product_id AS item_id, item.name AS item_name, direct, related, shared, together,
       in_segment
