// Purchase lines add up on the order's CONTAINS, with ingestion's properties: quantity, lines
// (= purchase events), unit_price as the quantity-weighted mean of priced lines, discount.
UNWIND $rows AS row
MATCH (o:Order {order_id: row.order_id})
MATCH (p:Product {product_id: row.product_id})
MERGE (o)-[r:CONTAINS]->(p)
ON CREATE SET r.quantity = 0, r.gross = 0.0, r.discounted = 0.0, r.priced_quantity = 0, r.lines = 0
SET r.quantity = r.quantity + row.quantity,
    r.gross = coalesce(r.gross, 0.0) + row.gross,
    r.discounted = coalesce(r.discounted, 0.0),
    r.priced_quantity = coalesce(r.priced_quantity, 0) + row.priced_quantity,
    r.lines = coalesce(r.lines, 0) + row.lines
SET r.unit_price = CASE WHEN r.priced_quantity > 0 THEN r.gross / r.priced_quantity END,
    r.discount = r.discounted / r.quantity
