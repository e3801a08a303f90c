// Products whose id starts with $q or whose name contains it (any case), at most $limit.
MATCH (p:Product)
WHERE p.product_id STARTS WITH $q OR toLower(p.name) CONTAINS toLower($q)
RETURN p.product_id AS id, coalesce(p.name, '') AS detail
ORDER BY CASE WHEN p.product_id STARTS WITH $q THEN 0 ELSE 1 END, id
LIMIT $limit
