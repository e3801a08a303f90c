// Customers with purchases (for personal lists) and products (for events), up to $limit each.
CALL () {
  MATCH (c:Customer)-[:PURCHASED]->()
  WITH DISTINCT c LIMIT $limit
  RETURN collect(c.customer_id) AS customers
}
CALL () {
  MATCH (p:Product)
  WITH p LIMIT $limit
  RETURN collect(p.product_id) AS products
}
RETURN customers, products
