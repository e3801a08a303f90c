// name: segment_category_affinity
// description: Which categories each customer segment over-buys: the segment's share of
//    purchases in a category against the whole shop's share (affinity > 1: over-represented).
// param: min_purchases = 2 (integer) - least purchases of the segment in the category
// param: limit = 100 (integer) - rows returned, highest affinity first
// example: kgrec cypher run segment_category_affinity --param min_purchases=10
MATCH (:Customer)-[b:PURCHASED]->(:Product)
WITH sum(b.count) AS all_purchases
MATCH (s:Segment)<-[:IN_SEGMENT]-(:Customer)-[b:PURCHASED]->(p:Product)
WITH all_purchases, s, p, sum(b.count) AS purchases
WITH all_purchases, s, collect({p: p, n: purchases}) AS bought, sum(purchases) AS segment_purchases
UNWIND bought AS item
WITH all_purchases, s, segment_purchases, item.p AS p, item.n AS n
MATCH (p)-[:IN_CATEGORY]->(c:Category)
WITH all_purchases, s, segment_purchases, c, sum(n) AS in_category
WHERE in_category >= $min_purchases
CALL (c) {
  MATCH (:Customer)-[b:PURCHASED]->(:Product)-[:IN_CATEGORY]->(c)
  RETURN sum(b.count) AS category_purchases
}
RETURN s.segment_id AS segment, c.category_id AS category_id, c.name AS category,
       in_category AS purchases,
       round(100.0 * in_category / segment_purchases, 1) AS segment_share_pct,
       round(100.0 * category_purchases / all_purchases, 1) AS shop_share_pct,
       round((toFloat(in_category) / segment_purchases) / (toFloat(category_purchases) / all_purchases), 2) AS affinity
ORDER BY affinity DESC, segment, category_id
LIMIT $limit
