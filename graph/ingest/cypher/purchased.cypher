// PURCHASED is derived from the orders, recomputed from scratch for the customers a load
// touched: exact after any reload or incremental load.
UNWIND $customer_ids AS customer_id
MATCH (c:Customer {customer_id: customer_id})-[:PLACED]->(o:Order)-[line:CONTAINS]->(p:Product)
WITH c, p, count(DISTINCT o) AS orders, sum(line.quantity) AS quantity,
     min(o.ts) AS first_ts, max(o.ts) AS last_ts
OPTIONAL MATCH (c)-[existing:PURCHASED]->(p)
CALL (c, p, existing, orders, quantity, first_ts, last_ts) {
  WITH c, p, existing, orders, quantity, first_ts, last_ts WHERE existing IS NULL
  CREATE (c)-[:PURCHASED {count: orders, quantity: quantity, first_ts: first_ts, last_ts: last_ts}]->(p)
}
CALL (existing, orders, quantity, first_ts, last_ts) {
  WITH existing, orders, quantity, first_ts, last_ts WHERE existing IS NOT NULL
  SET existing.count = orders, existing.quantity = quantity,
      existing.first_ts = first_ts, existing.last_ts = last_ts
}
