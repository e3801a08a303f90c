// Removes what a fault run's events wrote: its own customers (named by the run) and their orders.
MATCH (c:Customer)
WHERE c.customer_id STARTS WITH $customer_prefix
OPTIONAL MATCH (c)-[:PLACED]->(o:Order)
DETACH DELETE o, c
