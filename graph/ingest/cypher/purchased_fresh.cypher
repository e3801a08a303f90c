// Which of these customers have no PURCHASED relationship yet (a read).
UNWIND $customer_ids AS customer_id
MATCH (c:Customer {customer_id: customer_id})
WHERE NOT EXISTS { (c)-[:PURCHASED]->() }
RETURN customer_id
