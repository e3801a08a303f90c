// name: unsold_products
// description: Active products with stock on hand that nobody ordered over the last days
//    (dead stock: candidates for promotion or delisting).
// param: days = 90 (integer) - look-back window in days
// param: as_of = null (string) - end of the window (ISO); now when null
// example: kgrec cypher run unsold_products --param days=180 --param as_of=2023-12-31
WITH coalesce(datetime($as_of), datetime()) AS now
MATCH (p:Product)-[s:STOCKED_AT]->(:Location)
WHERE coalesce(p.active, true)
WITH now, p, sum(s.on_hand) AS on_hand
WHERE on_hand > 0
  AND NOT EXISTS { (o:Order)-[:CONTAINS]->(p) WHERE o.ts > now - duration({days: $days}) AND o.ts <= now }
RETURN p.product_id AS product_id, p.name AS product, on_hand, p.price AS price,
       round(on_hand * coalesce(p.price, 0.0), 2) AS stock_value
ORDER BY stock_value DESC, product_id
