// Promotions running at some moment from $since to $until ($until null: no end), per product
// they apply to: directly, through a category (and its subcategories) or through a brand.
// The serving snapshot asks for one moment ($since = $until = now); forecasts for everything
// from the first day of history on, promotions already scheduled included.
MATCH (pr:Promotion)
WHERE pr.ends_at > datetime($since) AND ($until IS NULL OR pr.starts_at <= datetime($until))
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
       pr.discount_pct AS discount_pct, pr.starts_at AS starts_at, pr.ends_at AS ends_at
