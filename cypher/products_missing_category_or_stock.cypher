// name: products_missing_category_or_stock
// description: Products with no category or no stock record: taxonomy-based candidates and
//    stock-aware ranking cannot treat them right (data-quality check after a load).
// param: only_active = true (boolean) - skip products marked inactive
// example: kgrec cypher run products_missing_category_or_stock --param only_active=false
MATCH (p:Product)
WHERE (NOT $only_active OR coalesce(p.active, true))
WITH p, EXISTS { (p)-[:IN_CATEGORY]->(:Category) } AS has_category,
     EXISTS { (p)-[:STOCKED_AT]->(:Location) } AS has_stock
WHERE NOT has_category OR NOT has_stock
RETURN p.product_id AS product_id, p.name AS product, has_category, has_stock,
       COUNT { (:Order)-[:CONTAINS]->(p) } AS orders
ORDER BY orders DESC, product_id
