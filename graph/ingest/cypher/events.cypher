// Events, grouped per (customer, product) within the batch. The relationship keeps the set of
// event times, so reloading the same events changes nothing and new ones add up.
// <<rel_type>> comes from an allow-list in graph/ingest/writer.py, never from input.
UNWIND $rows AS row
MERGE (c:Customer {customer_id: row.customer_id})
ON CREATE SET c.personalization = true
SET c.first_seen = CASE WHEN c.first_seen IS NULL OR row.ts[0] < c.first_seen THEN row.ts[0] ELSE c.first_seen END
WITH c, row
MATCH (p:Product {product_id: row.product_id})
MERGE (c)-[r:<<rel_type>>]->(p)
WITH r, row, r.last_ts AS previous_last
SET r.ts = COLLECT { UNWIND coalesce(r.ts, []) + row.ts AS t RETURN DISTINCT t ORDER BY t }
SET r.count = size(r.ts), r.first_ts = r.ts[0], r.last_ts = r.ts[-1],
    r.value = CASE WHEN row.value IS NOT NULL AND (previous_last IS NULL OR row.value_ts >= previous_last)
                   THEN row.value ELSE r.value END
