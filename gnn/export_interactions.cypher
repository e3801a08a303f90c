// Interactions for the models: one row per order line, with the order's time (epoch millis).
// Read from orders, never from the derived PURCHASED summaries, so a temporal split can cut
// them at any time.
MATCH (c:Customer)-[:PLACED]->(o:Order)-[l:CONTAINS]->(p:Product)
RETURN c.customer_id AS customer, p.product_id AS product, o.ts.epochMillis AS ts,
       coalesce(l.quantity, 1) AS quantity
