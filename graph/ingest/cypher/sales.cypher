// Aggregated demand history: one SOLD relationship per product, location and period.
UNWIND $rows AS row
MATCH (p:Product {product_id: row.product_id})
MERGE (l:Location {location_id: row.location_id})
MERGE (p)-[s:SOLD {period_start: date(row.period_start)}]->(l)
SET s.units = row.units, s.price = row.price, s.on_promotion = row.on_promotion,
    s.featured = row.featured
