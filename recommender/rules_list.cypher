// Every merchandising rule, oldest first (pins at the same position keep their order).
MATCH (r:MerchandisingRule)
RETURN properties(r) AS rule
ORDER BY r.created_at, r.rule_id
