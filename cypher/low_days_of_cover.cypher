// name: low_days_of_cover
// description: Current forecasts whose stock covers fewer than max_days days of demand, with
//    the replenishment lead time: what to reorder first.
// param: max_days = 14 (float) - days of cover below which a product is listed
// example: kgrec cypher run low_days_of_cover --param max_days=7
MATCH (p:Product)-[:HAS_FORECAST]->(f:Forecast {current: true})
WHERE f.days_of_cover IS NOT NULL AND f.days_of_cover < $max_days
RETURN p.product_id AS product_id, p.name AS product, f.location_id AS location_id,
       f.on_hand AS on_hand, f.lead_time_days AS lead_time_days,
       round(f.days_of_cover, 1) AS days_of_cover,
       round(f.stockout_probability, 3) AS stockout_probability,
       f.days_of_cover < coalesce(f.lead_time_days, 0) AS runs_out_before_restock
ORDER BY days_of_cover, product_id
