// Promotions that run on or after $from, per product they apply to: directly, through a
// category (and its subcategories) or through a brand; days as dates, the last one inclusive.
MATCH (pr:Promotion)-[:APPLIES_TO]->(target)
WHERE pr.ends_at >= datetime($from) AND pr.discount_pct IS NOT NULL
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
RETURN p.product_id AS product_id, date(pr.starts_at) AS first_day, date(pr.ends_at) AS last_day,
       pr.discount_pct AS discount_pct
