// name: top_products_by_revenue
// description: Best sellers by revenue (quantity x unit price, net of discount) over the last
//    days, with units and distinct buyers.
// param: days = 90 (integer) - look-back window in days
// param: as_of = null (string) - end of the window (ISO); now when null
// param: k = 20 (integer) - products returned
// example: kgrec cypher run top_products_by_revenue --param days=365 --param as_of=2023-12-31 --param k=10
WITH coalesce(datetime($as_of), datetime()) AS now
MATCH (c:Customer)-[:PLACED]->(o:Order)-[line:CONTAINS]->(p:Product)
WHERE o.ts > now - duration({days: $days}) AND o.ts <= now
WITH p, sum(line.quantity) AS units, count(DISTINCT c) AS buyers,
     sum(line.quantity * coalesce(line.unit_price, p.price, 0.0) * (1 - coalesce(line.discount, 0.0))) AS revenue
RETURN p.product_id AS product_id, p.name AS product, units, buyers, round(revenue, 2) AS revenue
ORDER BY revenue DESC, product_id
LIMIT $k
