// Explanation paths from anchor products (the product page's product, the cart's items) to each
// product of $product_ids, in one round trip. Starts from product_id keys; the item's buyers
// are a capped sample ($co_buyers); the other patterns read only the anchors' and the item's
// own relationships, never a category's or a brand's products.
// Customers appear only with personalization = true, and only as ids.
UNWIND $anchor_ids AS anchor_id
MATCH (a:Product {product_id: anchor_id})
WITH collect(a) AS anchors
// What the anchors reach in one hop, read once and matched against every item below.
CALL (anchors) {
  UNWIND anchors AS a
  MATCH (a)-[l:IN_CATEGORY|HAS_BRAND|HAS_ATTRIBUTE|RELATED]->(shared)
  WHERE NOT shared:Customer
  RETURN collect({a: a, shared: shared, via: type(l), relation: l.relation}) AS reach
}
UNWIND $product_ids AS item_id
MATCH (item:Product {product_id: item_id})
// 1 hop: an anchor and the item joined by a knowledge triple (e.g. compatible_with).
CALL (item, anchors) {
  MATCH (item)-[rel:RELATED]-(a:Product)
  WHERE a IN anchors AND a <> item
  WITH a, rel
  LIMIT $per_pattern
  RETURN collect({
    product_id: a.product_id, product_name: a.name, relation: rel.relation,
    outgoing: startNode(rel) = a
  }) AS related
}
// 2 hops: an anchor and the item share a category, brand, attribute or entity.
CALL (item, reach) {
  MATCH (item)-[l:IN_CATEGORY|HAS_BRAND|HAS_ATTRIBUTE|RELATED]->(shared)
  WHERE NOT shared:Customer
  WITH item, shared, type(l) AS via, l.relation AS relation, reach
  UNWIND [x IN reach WHERE x.shared = shared AND x.via = via AND x.a <> item
                           AND (via <> 'RELATED' OR x.relation = relation)] AS x
  WITH x.a AS a, shared, via, relation
  LIMIT $per_pattern * 4
  RETURN collect({
    via: via, relation: relation, product_id: a.product_id, product_name: a.name,
    labels: labels(shared),
    shared_id: coalesce(shared.category_id, shared.brand_id, shared.attribute_id, shared.entity_id, shared.product_id),
    shared_name: coalesce(shared.name, shared.attribute_id), key: shared.key, value: shared.value,
    degree: CASE via
      WHEN 'IN_CATEGORY' THEN COUNT { (shared)<-[:IN_CATEGORY]-() }
      WHEN 'HAS_BRAND' THEN COUNT { (shared)<-[:HAS_BRAND]-() }
      WHEN 'HAS_ATTRIBUTE' THEN COUNT { (shared)<-[:HAS_ATTRIBUTE]-() }
      ELSE COUNT { (shared)<-[:RELATED]-() } END
  }) AS shared
}
// 2 hops: another customer bought an anchor and the item (a capped sample of the item's buyers).
CALL (item, anchors) {
  MATCH (item)<-[theirs:PURCHASED]-(other:Customer)
  WHERE other.personalization = true
  WITH other, theirs
  LIMIT $co_buyers
  MATCH (other)-[their_link:PURCHASED]->(a:Product)
  WHERE a IN anchors AND a <> item
  WITH a, head(collect({other: other, theirs: theirs, their_link: their_link})) AS co
  LIMIT $per_pattern
  RETURN collect({
    product_id: a.product_id, product_name: a.name, other_id: co.other.customer_id,
    link_ms: co.their_link.last_ts.epochMillis, item_ms: co.theirs.last_ts.epochMillis,
    degree: COUNT { (a)<-[:PURCHASED]-() }
  }) AS together
}
RETURN item.product_id AS item_id, item.name AS item_name, related, shared, together
