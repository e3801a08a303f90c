// Orders (one row per order in the batch). Times travel as epoch milliseconds: the Python
// driver packs datetime objects an order of magnitude slower than integers.
// A new order is created with its PLACED link (no MERGE locks); an order the graph already
// holds gets its time set anew, except that within one load (`seen`: an earlier batch of this
// load wrote it) its time stays the earliest of its lines.
UNWIND $rows AS row
MERGE (c:Customer {customer_id: row.customer_id})
ON CREATE SET c.personalization = true
WITH c, row, datetime({epochMillis: row.ts}) AS ts
SET c.first_seen = CASE WHEN c.first_seen IS NULL OR ts < c.first_seen THEN ts ELSE c.first_seen END
WITH c, row, ts
OPTIONAL MATCH (existing:Order {order_id: row.order_id})
CALL (c, row, ts, existing) {
  WITH c, row, ts, existing WHERE existing IS NULL
  CREATE (o:Order {order_id: row.order_id, ts: ts, channel: row.channel})
  CREATE (c)-[:PLACED]->(o)
}
CALL (c, row, ts, existing) {
  WITH c, row, ts, existing WHERE existing IS NOT NULL
  SET existing.ts = CASE WHEN row.seen AND existing.ts < ts THEN existing.ts ELSE ts END,
      existing.channel = coalesce(row.channel, existing.channel)
  MERGE (c)-[:PLACED]->(existing)
}
