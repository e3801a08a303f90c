// Weekly sales per product and location (the `sales` file), with the regressors.
MATCH (p:Product)-[s:SOLD]->(l:Location)
RETURN p.product_id AS product_id, l.location_id AS location_id,
       toString(s.period_start) AS period_start, s.units AS units, s.price AS price,
       coalesce(s.on_promotion, false) AS on_promotion, coalesce(s.featured, false) AS featured
