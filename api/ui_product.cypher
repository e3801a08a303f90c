// One product for the merchandiser page: name, price, categories and brand.
MATCH (p:Product {product_id: $product_id})
OPTIONAL MATCH (p)-[:IN_CATEGORY]->(c:Category)
OPTIONAL MATCH (p)-[:HAS_BRAND]->(b:Brand)
RETURN p.product_id AS product_id, p.name AS name, p.price AS price,
       coalesce(p.active, true) AS active,
       [x IN collect(DISTINCT c) | coalesce(x.name, x.category_id)] AS categories,
       head(collect(DISTINCT b.brand_id)) AS brand
