// Order lines, summed per (order, product) within the batch. `seen` marks a pair that an
// earlier batch of the same load already wrote: its values add up. Otherwise the row sets the
// pair, so a reload changes nothing, and repeated lines never lose quantity.
UNWIND $rows AS row
MATCH (o:Order {order_id: row.order_id})
MATCH (p:Product {product_id: row.product_id})
OPTIONAL MATCH (o)-[existing:CONTAINS]->(p)
CALL (row, o, p, existing) {
  WITH row, o, p, existing WHERE existing IS NULL
  CREATE (o)-[r:CONTAINS]->(p)
  SET r = row.values
}
CALL (row, existing) {
  WITH row, existing WHERE existing IS NOT NULL AND NOT row.seen
  SET existing = row.values
}
CALL (row, existing) {
  WITH row, existing WHERE existing IS NOT NULL AND row.seen
  SET existing.quantity = existing.quantity + row.values.quantity,
      existing.gross = existing.gross + row.values.gross,
      existing.discounted = existing.discounted + row.values.discounted,
      existing.priced_quantity = existing.priced_quantity + row.values.priced_quantity,
      existing.lines = existing.lines + row.values.lines
  SET existing.unit_price = CASE WHEN existing.priced_quantity > 0 THEN existing.gross / existing.priced_quantity END,
      existing.discount = existing.discounted / existing.quantity
}
