// Stock per location with the current forecast's days of cover and stockout probability there.
MATCH (p:Product {product_id: $product_id})-[s:STOCKED_AT]->(l:Location)
OPTIONAL MATCH (p)-[:HAS_FORECAST]->(f:Forecast {current: true})-[:FOR_LOCATION]->(l)
RETURN l.location_id AS location_id, s.on_hand AS on_hand,
       coalesce(s.lead_time_days, 7) AS lead_time_days, s.updated_at AS updated_at,
       f.days_of_cover AS days_of_cover, f.stockout_probability AS stockout_probability
ORDER BY location_id
