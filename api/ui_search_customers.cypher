// Customers whose id starts with $q (the page's search box), in id order, at most $limit.
MATCH (c:Customer)
WHERE c.customer_id STARTS WITH $q
RETURN c.customer_id AS id, coalesce(c.segment, '') AS detail
ORDER BY id
LIMIT $limit
