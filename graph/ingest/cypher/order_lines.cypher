// Order lines, summed per (order, product) within the batch. `seen` marks a pair an earlier
// batch of the same load already wrote: its values add up. Otherwise the row sets the pair,
// so a reload changes nothing, and repeated lines never lose quantity.
UNWIND $rows AS row
MATCH (o:Order {order_id: row.order_id})
MATCH (p:Product {product_id: row.product_id})
MERGE (o)-[r:CONTAINS]->(p)
SET r.quantity = CASE WHEN row.seen THEN r.quantity + row.quantity ELSE row.quantity END,
    r.gross = CASE WHEN row.seen THEN r.gross + row.gross ELSE row.gross END,
    r.discounted = CASE WHEN row.seen THEN r.discounted + row.discounted ELSE row.discounted END,
    r.priced_quantity = CASE WHEN row.seen THEN r.priced_quantity + row.priced_quantity ELSE row.priced_quantity END,
    r.lines = CASE WHEN row.seen THEN r.lines + row.lines ELSE row.lines END
SET r.unit_price = CASE WHEN r.priced_quantity > 0 THEN r.gross / r.priced_quantity END,
    r.discount = CASE WHEN r.quantity > 0 THEN r.discounted / r.quantity END
