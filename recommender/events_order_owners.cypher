// The customer who placed each of these orders, for orders the graph already holds.
UNWIND $ids AS id
MATCH (c:Customer)-[:PLACED]->(o:Order {order_id: id})
RETURN id AS order_id, c.customer_id AS customer_id
