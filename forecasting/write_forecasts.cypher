// Versioned forecasts: the new one is current, the previous current one for the same product
// and location is not any more. The location "ALL" stands for products with no stock record.
UNWIND $rows AS row
MATCH (p:Product {product_id: row.product_id})
MERGE (l:Location {location_id: row.location_id})
WITH p, l, row
OPTIONAL MATCH (old:Forecast {product_id: row.product_id, location_id: row.location_id, current: true})
SET old.current = false
WITH DISTINCT p, l, row
CREATE (f:Forecast {forecast_id: row.forecast_id})
SET f += row, f.current = true
CREATE (p)-[:HAS_FORECAST]->(f)
CREATE (f)-[:FOR_LOCATION]->(l)
