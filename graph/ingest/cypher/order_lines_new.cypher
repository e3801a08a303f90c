// Lines of orders created in this batch: no relationship can exist yet, so plain CREATE.
// Properties are spelled out (not SET r = map) so the plan needs no Eager step.
UNWIND $rows AS row
MATCH (o:Order {order_id: row.order_id})
MATCH (p:Product {product_id: row.product_id})
CREATE (o)-[:CONTAINS {
  quantity: row.values.quantity, gross: row.values.gross, discounted: row.values.discounted,
  priced_quantity: row.values.priced_quantity, lines: row.values.lines,
  unit_price: row.values.unit_price, discount: row.values.discount
}]->(p)
