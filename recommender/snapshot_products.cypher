// Product facts for the serving snapshot: price, category, brand, stock summed over locations,
// the shortest lead time, the current forecasts' worst stock risk, and how many customers bought
// the product.
MATCH (p:Product)
OPTIONAL CALL (p) {
  MATCH (p)-[s:STOCKED_AT]->(:Location)
  RETURN sum(s.on_hand) AS on_hand, min(s.lead_time_days) AS lead_time_days
}
OPTIONAL CALL (p) {
  MATCH (p)-[:HAS_FORECAST]->(f:Forecast {current: true})
  RETURN min(f.days_of_cover) AS days_of_cover, max(f.stockout_probability) AS stockout_probability,
         coalesce(max(f.overstock), false) AS overstock
}
RETURN p.product_id AS id, p.name AS name, p.active AS active, p.price AS price,
       COLLECT { MATCH (p)-[:IN_CATEGORY]->(c:Category) RETURN c.category_id ORDER BY c.category_id LIMIT 1 }[0]
         AS category_id,
       COLLECT { MATCH (p)-[:HAS_BRAND]->(b:Brand) RETURN b.brand_id ORDER BY b.brand_id LIMIT 1 }[0]
         AS brand_id,
       on_hand, lead_time_days, days_of_cover, stockout_probability,
       coalesce(overstock, false) AS overstock,
       COUNT { (:Customer)-[:PURCHASED]->(p) } AS buyers
ORDER BY id
