// Erasure: the customer's orders stay as anonymous sales records (forecasting and co-purchase
// statistics count them); the PLACED link goes with the customer node.
MATCH (c:Customer {customer_id: $customer_id})
OPTIONAL MATCH (c)-[:PLACED]->(o:Order)
SET o.customer_erased_at = datetime($now)
RETURN count(o) AS orders
