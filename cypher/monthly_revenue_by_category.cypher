// name: monthly_revenue_by_category
// description: Revenue and orders per category and month over the last months (trend per
//    category; a product in two categories counts in both).
// param: months = 6 (integer) - months back from as_of
// param: as_of = null (string) - end of the window (ISO); now when null
// example: kgrec cypher run monthly_revenue_by_category --param months=12 --param as_of=2023-12-31
WITH coalesce(datetime($as_of), datetime()) AS now
MATCH (o:Order)-[line:CONTAINS]->(p:Product)-[:IN_CATEGORY]->(c:Category)
WHERE o.ts > now - duration({months: $months}) AND o.ts <= now
WITH c, date.truncate('month', o.ts) AS month, o, line, p
RETURN c.category_id AS category_id, c.name AS category, toString(month) AS month,
       count(DISTINCT o) AS orders,
       round(sum(line.quantity * coalesce(line.unit_price, p.price, 0.0) * (1 - coalesce(line.discount, 0.0))), 2) AS revenue
ORDER BY category_id, month
