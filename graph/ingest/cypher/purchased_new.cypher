// PURCHASED for customers that have none yet, derived from their orders: plain CREATE.
UNWIND $customer_ids AS customer_id
MATCH (c:Customer {customer_id: customer_id})-[:PLACED]->(o:Order)-[line:CONTAINS]->(p:Product)
WITH c, p, count(DISTINCT o) AS orders, sum(line.quantity) AS quantity,
     min(o.ts) AS first_ts, max(o.ts) AS last_ts
CREATE (c)-[:PURCHASED {count: orders, quantity: quantity, first_ts: first_ts, last_ts: last_ts}]->(p)
