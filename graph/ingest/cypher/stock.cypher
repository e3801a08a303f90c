// Stock per product and location; an older snapshot (updated_at) never overwrites a newer one.
UNWIND $rows AS row
MATCH (p:Product {product_id: row.product_id})
MERGE (l:Location {location_id: row.location_id})
MERGE (p)-[s:STOCKED_AT]->(l)
WITH s, row, CASE WHEN row.updated_at IS NULL THEN NULL ELSE datetime({epochMillis: row.updated_at}) END AS updated_at
WHERE s.updated_at IS NULL OR updated_at IS NULL OR updated_at >= s.updated_at
SET s.on_hand = row.on_hand,
    s.lead_time_days = coalesce(row.lead_time_days, s.lead_time_days),
    s.updated_at = coalesce(updated_at, s.updated_at)
