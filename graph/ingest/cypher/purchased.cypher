// PURCHASED is derived from the orders, recomputed from scratch for the customers a load
// touched: exact after any reload or incremental load.
UNWIND $customer_ids AS customer_id
MATCH (c:Customer {customer_id: customer_id})-[:PLACED]->(o:Order)-[line:CONTAINS]->(p:Product)
WITH c, p, count(DISTINCT o) AS orders, sum(line.quantity) AS quantity,
     min(o.ts) AS first_ts, max(o.ts) AS last_ts
MERGE (c)-[r:PURCHASED]->(p)
SET r.count = orders, r.quantity = quantity, r.first_ts = first_ts, r.last_ts = last_ts
