// Stock per product and location; an older snapshot (updated_at) never overwrites a newer one.
UNWIND $rows AS row
MATCH (p:Product {product_id: row.product_id})
MERGE (l:Location {location_id: row.location_id})
MERGE (p)-[s:STOCKED_AT]->(l)
WITH s, row
WHERE s.updated_at IS NULL OR row.updated_at IS NULL OR row.updated_at >= s.updated_at
SET s.on_hand = row.on_hand,
    s.lead_time_days = coalesce(row.lead_time_days, s.lead_time_days),
    s.updated_at = coalesce(row.updated_at, s.updated_at)
