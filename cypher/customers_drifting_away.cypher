// name: customers_drifting_away
// description: Regular customers (at least min_orders orders) whose last order is more than
//    days_quiet days old, with their usual gap between orders: candidates for a win-back mail.
// param: days_quiet = 60 (integer) - days since the last order
// param: min_orders = 3 (integer) - orders a customer needs to count as regular
// param: as_of = null (string) - reference date (ISO, e.g. 2024-06-30); now when null
// param: limit = 100 (integer) - customers returned, longest quiet first
// example: kgrec cypher run customers_drifting_away --param days_quiet=30 --param as_of=2023-06-30
WITH coalesce(datetime($as_of), datetime()) AS now
MATCH (c:Customer)-[:PLACED]->(o:Order)
WHERE o.ts <= now
WITH now, c, count(o) AS orders, min(o.ts) AS first_order, max(o.ts) AS last_order
WHERE orders >= $min_orders AND last_order < now - duration({days: $days_quiet})
RETURN c.customer_id AS customer_id, c.segment AS segment, orders,
       date(last_order) AS last_order,
       duration.inDays(last_order, now).days AS days_quiet,
       round(toFloat(duration.inDays(first_order, last_order).days) / (orders - 1), 1) AS usual_gap_days
ORDER BY days_quiet DESC, customer_id
LIMIT $limit
