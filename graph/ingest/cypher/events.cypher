// Events of pairs that already have a relationship of this type: the relationship keeps the
// set of event times, so reloading the same events changes nothing and new ones add up.
// <<rel_type>> comes from an allow-list in graph/ingest/service.py.
UNWIND $rows AS row
MATCH (c:Customer {customer_id: row.customer_id})-[r:<<rel_type>>]->(p:Product {product_id: row.product_id})
WITH r, row, r.last_ts AS previous_last,
     COLLECT { UNWIND r.ts + [t IN row.ts | datetime({epochMillis: t})] AS t RETURN DISTINCT t ORDER BY t } AS merged
SET r.ts = merged, r.count = size(merged), r.first_ts = merged[0], r.last_ts = merged[-1],
    r.value = CASE WHEN row.value IS NOT NULL AND datetime({epochMillis: row.value_ts}) >= previous_last
                   THEN row.value ELSE r.value END
