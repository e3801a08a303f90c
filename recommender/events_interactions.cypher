// view / click / add_to_cart: the relationship keeps every event time, sorted. Times are
// appended, not merged as a set (ingestion's events.cypher): the shipping cursor already makes
// each event arrive once, so `count` is exactly the number of events shipped.
// <<rel_type>> comes from an allow-list in recommender/events.py.
UNWIND $rows AS row
MATCH (c:Customer {customer_id: row.customer_id})
MATCH (p:Product {product_id: row.product_id})
MERGE (c)-[r:<<rel_type>>]->(p)
WITH r, [t IN row.ts | datetime({epochMillis: t})] AS added
WITH r, COLLECT { UNWIND coalesce(r.ts, []) + added AS t RETURN t ORDER BY t } AS times
SET r.ts = times, r.count = size(times), r.first_ts = times[0], r.last_ts = times[-1]
