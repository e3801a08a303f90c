// Promotions running at $now that reach the product: directly, through its categories (and
// their parents) or through its brand.
MATCH (p:Product {product_id: $product_id})
CALL (p) {
  MATCH (pr:Promotion)-[:APPLIES_TO]->(p)
  RETURN pr
  UNION
  MATCH (p)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..5]->(:Category)<-[:APPLIES_TO]-(pr:Promotion)
  RETURN pr
  UNION
  MATCH (p)-[:HAS_BRAND]->(:Brand)<-[:APPLIES_TO]-(pr:Promotion)
  RETURN pr
}
WITH DISTINCT pr
WHERE pr.starts_at <= datetime($now) < pr.ends_at
RETURN pr.promotion_id AS promotion_id, pr.name AS name, pr.discount_pct AS discount_pct,
       pr.channel AS channel, pr.target_type AS target_type, pr.target_id AS target_id,
       pr.starts_at AS starts_at, pr.ends_at AS ends_at
ORDER BY discount_pct DESC, promotion_id
