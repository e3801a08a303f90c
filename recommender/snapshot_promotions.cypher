// Promotions running at $now, per product they apply to: directly, through a category (and its
// subcategories) or through a brand.
MATCH (pr:Promotion)
WHERE pr.starts_at <= datetime($now) < pr.ends_at
MATCH (pr)-[:APPLIES_TO]->(target)
CALL (target) {
  MATCH (p:Product) WHERE p = target
  RETURN p
  UNION
  MATCH (p:Product)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..5]->(target:Category)
  RETURN p
  UNION
  MATCH (p:Product)-[:HAS_BRAND]->(target:Brand)
  RETURN p
}
RETURN DISTINCT p.product_id AS product_id, pr.promotion_id AS promotion_id,
       pr.discount_pct AS discount_pct, pr.ends_at AS ends_at
