// Current stock per product and location.
MATCH (p:Product)-[s:STOCKED_AT]->(l:Location)
RETURN p.product_id AS product_id, l.location_id AS location_id,
       s.on_hand AS on_hand, coalesce(s.lead_time_days, 7) AS lead_time_days
