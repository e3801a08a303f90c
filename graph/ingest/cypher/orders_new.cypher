// Orders the graph does not hold yet: plain CREATE, no MERGE locks. Times travel as epoch
// milliseconds: the Python driver packs datetime objects an order of magnitude slower.
UNWIND $rows AS row
MATCH (c:Customer {customer_id: row.customer_id})
CREATE (o:Order {order_id: row.order_id, ts: datetime({epochMillis: row.ts}), channel: row.channel})
CREATE (c)-[:PLACED]->(o)
