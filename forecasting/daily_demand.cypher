// Units sold per product and day, from the orders.
MATCH (o:Order)-[line:CONTAINS]->(p:Product)
RETURN p.product_id AS product_id, date(o.ts) AS day, sum(line.quantity) AS units
