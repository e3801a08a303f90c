// name: stockout_risk_on_promotion
// description: Products with a current forecast at stockout risk that a promotion active at
//    as_of pushes (directly, through their category tree or their brand): pause the promotion
//    or expedite stock.
// param: min_probability = 0.5 (float) - least stockout probability before restock
// param: as_of = null (string) - reference date (ISO); now when null
// example: kgrec cypher run stockout_risk_on_promotion --param min_probability=0.3 --param as_of=2023-04-03
WITH coalesce(datetime($as_of), datetime()) AS now
MATCH (pr:Promotion)-[:APPLIES_TO]->(target)
WHERE pr.starts_at <= now AND now <= pr.ends_at
MATCH (p:Product)
WHERE p = target
   OR EXISTS { (p)-[:HAS_BRAND]->(target) }
   OR EXISTS { (p)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..5]->(target) }
MATCH (p)-[:HAS_FORECAST]->(f:Forecast {current: true})
WHERE f.stockout_probability >= $min_probability
RETURN p.product_id AS product_id, p.name AS product, pr.promotion_id AS promotion_id,
       pr.name AS promotion, pr.discount_pct AS discount_pct, f.location_id AS location_id,
       f.on_hand AS on_hand, f.days_of_cover AS days_of_cover,
       f.stockout_probability AS stockout_probability
ORDER BY stockout_probability DESC, product_id, promotion_id
