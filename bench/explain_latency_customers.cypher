// Customers with at least one purchase, and what they bought (bench.explain_latency).
MATCH (c:Customer)-[:PURCHASED]->(p:Product)
RETURN c.customer_id AS customer_id, collect(p.product_id) AS bought
