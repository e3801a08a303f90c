// Storefront events for the models: one row per event time (each relationship keeps the list
// of its times in `ts`), so a temporal split can cut them like order lines. The types are
// gnn.snapshot.EVENT_KINDS.
MATCH (c:Customer)-[r:VIEWED|CLICKED|ADDED_TO_CART]->(p:Product)
UNWIND r.ts AS t
RETURN c.customer_id AS customer, p.product_id AS product, type(r) AS kind,
       t.epochMillis AS ts
