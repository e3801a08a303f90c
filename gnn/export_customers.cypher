// Customers for the model snapshot: key and opt-out flag (personalization = false).
MATCH (c:Customer)
RETURN c.customer_id AS id, c.personalization AS personalization
