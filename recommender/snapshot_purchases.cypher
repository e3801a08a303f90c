// What each customer bought (the derived PURCHASED relationships: the current state).
MATCH (c:Customer)-[:PURCHASED]->(p:Product)
RETURN c.customer_id AS customer, collect(p.product_id) AS products
