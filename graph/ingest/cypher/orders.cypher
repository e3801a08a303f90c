// Orders (one row per order in the batch); the customer is created if new. An order's time is
// the earliest of its lines in this load (`seen` marks an order already written by an earlier
// batch of the same load); a later load that names the order again sets it anew.
UNWIND $rows AS row
MERGE (c:Customer {customer_id: row.customer_id})
ON CREATE SET c.personalization = true
SET c.first_seen = CASE WHEN c.first_seen IS NULL OR row.ts < c.first_seen THEN row.ts ELSE c.first_seen END
MERGE (o:Order {order_id: row.order_id})
SET o.ts = CASE WHEN row.seen AND o.ts < row.ts THEN o.ts ELSE row.ts END,
    o.channel = coalesce(row.channel, o.channel)
MERGE (c)-[:PLACED]->(o)
