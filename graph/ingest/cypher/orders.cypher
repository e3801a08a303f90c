// Orders the graph already holds: a new load sets their time anew, except within one load
// (`seen`: an earlier batch of this load wrote the order) where it stays the earliest line's.
UNWIND $rows AS row
MATCH (c:Customer {customer_id: row.customer_id})
MATCH (o:Order {order_id: row.order_id})
WITH c, o, row, datetime({epochMillis: row.ts}) AS ts
SET o.ts = CASE WHEN row.seen AND o.ts < ts THEN o.ts ELSE ts END,
    o.channel = coalesce(row.channel, o.channel)
MERGE (c)-[:PLACED]->(o)
