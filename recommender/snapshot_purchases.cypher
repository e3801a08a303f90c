// What each customer bought and when last (the derived PURCHASED relationships: the current state).
MATCH (c:Customer)-[r:PURCHASED]->(p:Product)
RETURN c.customer_id AS customer, collect(p.product_id) AS products,
       collect(r.last_ts.epochMillis) AS last_ts
