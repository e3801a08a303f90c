// Products with their categories and how many customers bought them (bench.explain_latency).
MATCH (p:Product)
RETURN p.product_id AS product_id,
       [(p)-[:IN_CATEGORY]->(c:Category) | c.category_id] AS categories,
       COUNT { (p)<-[:PURCHASED]-(:Customer) } AS buyers
