// PURCHASED derived from the orders, from scratch, for the customers a batch's purchases
// touched (as ingestion's purchased.cypher): exact whatever came before.
UNWIND $customer_ids AS customer_id
MATCH (c:Customer {customer_id: customer_id})-[:PLACED]->(o:Order)-[line:CONTAINS]->(p:Product)
WITH c, p, count(DISTINCT o) AS orders, sum(line.quantity) AS quantity,
     min(o.ts) AS first_ts, max(o.ts) AS last_ts
MERGE (c)-[r:PURCHASED]->(p)
SET r.count = orders, r.quantity = quantity, r.first_ts = first_ts, r.last_ts = last_ts
