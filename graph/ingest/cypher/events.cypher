// Events, grouped per (customer, product) within the batch. The relationship keeps the set of
// event times, so reloading the same events changes nothing and new ones add up.
// <<rel_type>> comes from an allow-list in graph/ingest/service.py, never from input.
// Times travel as epoch milliseconds (fast to pack) and are stored as datetimes.
UNWIND $rows AS row
MERGE (c:Customer {customer_id: row.customer_id})
ON CREATE SET c.personalization = true
WITH c, row, [t IN row.ts | datetime({epochMillis: t})] AS times
SET c.first_seen = CASE WHEN c.first_seen IS NULL OR times[0] < c.first_seen THEN times[0] ELSE c.first_seen END
WITH c, row, times
MATCH (p:Product {product_id: row.product_id})
OPTIONAL MATCH (c)-[existing:<<rel_type>>]->(p)
CALL (c, p, row, times, existing) {
  WITH c, p, row, times, existing WHERE existing IS NULL
  CREATE (c)-[:<<rel_type>> {ts: times, count: size(times), first_ts: times[0], last_ts: times[-1], value: row.value}]->(p)
}
CALL (row, times, existing) {
  WITH row, times, existing WHERE existing IS NOT NULL
  WITH row, existing, existing.last_ts AS previous_last,
       COLLECT { UNWIND existing.ts + times AS t RETURN DISTINCT t ORDER BY t } AS merged
  SET existing.ts = merged, existing.count = size(merged), existing.first_ts = merged[0],
      existing.last_ts = merged[-1],
      existing.value = CASE WHEN row.value IS NOT NULL AND datetime({epochMillis: row.value_ts}) >= previous_last
                            THEN row.value ELSE existing.value END
}
