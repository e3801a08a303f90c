// Events of (customer, product) pairs with no relationship of this type yet: plain CREATE.
// <<rel_type>> comes from an allow-list in graph/ingest/service.py.
UNWIND $rows AS row
MATCH (c:Customer {customer_id: row.customer_id})
MATCH (p:Product {product_id: row.product_id})
WITH c, p, row, [t IN row.ts | datetime({epochMillis: t})] AS times
CREATE (c)-[:<<rel_type>> {ts: times, count: size(times), first_ts: times[0], last_ts: times[-1], value: row.value}]->(p)
