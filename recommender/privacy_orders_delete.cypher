// Erasure with delete_orders: the customer's orders and their lines go too.
MATCH (c:Customer {customer_id: $customer_id})
OPTIONAL MATCH (c)-[:PLACED]->(o:Order)
WITH collect(DISTINCT o) AS orders
WITH orders, reduce(n = 0, o IN orders | n + COUNT { (o)-[:CONTAINS]->() }) AS lines
FOREACH (o IN orders | DETACH DELETE o)
RETURN size(orders) AS orders, lines
