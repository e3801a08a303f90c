// Purchases: the order is created or extended; its time is the earliest of its lines.
UNWIND $rows AS row
MATCH (c:Customer {customer_id: row.customer_id})
WITH c, row, datetime({epochMillis: row.ts}) AS ts
MERGE (o:Order {order_id: row.order_id})
ON CREATE SET o.ts = ts
ON MATCH SET o.ts = CASE WHEN o.ts IS NULL OR ts < o.ts THEN ts ELSE o.ts END
MERGE (c)-[:PLACED]->(o)
