// Customers for the serving snapshot: segment and opt-out flag.
MATCH (c:Customer)
RETURN c.customer_id AS id, c.segment AS segment, c.personalization AS personalization
ORDER BY id
