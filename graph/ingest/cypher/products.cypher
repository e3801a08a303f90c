// Products: missing optional values never erase stored ones; every name ever seen is kept in
// `names`. Category, brand, attribute and supplier links are replaced by the row's.
UNWIND $rows AS row
MERGE (p:Product {product_id: row.product_id})
ON CREATE SET p.active = true
SET p.name = row.name,
    p.names = COLLECT { UNWIND coalesce(p.names, []) + [row.name] AS n RETURN DISTINCT n ORDER BY n },
    p.price = coalesce(row.price, p.price),
    p.created_at = coalesce(CASE WHEN row.created_at IS NULL THEN NULL ELSE datetime({epochMillis: row.created_at}) END, p.created_at),
    p.active = coalesce(row.active, p.active)
WITH p, row
CALL (p, row) {
  OPTIONAL MATCH (p)-[old:IN_CATEGORY]->(c:Category)
  WHERE NOT c.category_id IN row.category_ids
  DELETE old
}
CALL (p, row) {
  UNWIND row.category_ids AS category_id
  MATCH (c:Category {category_id: category_id})
  MERGE (p)-[:IN_CATEGORY]->(c)
}
CALL (p, row) {
  WITH p, row WHERE row.brand IS NOT NULL
  MERGE (b:Brand {brand_id: row.brand})
  ON CREATE SET b.name = row.brand
  WITH p, b
  OPTIONAL MATCH (p)-[old:HAS_BRAND]->(other:Brand) WHERE other <> b
  DELETE old
  WITH DISTINCT p, b
  MERGE (p)-[:HAS_BRAND]->(b)
}
CALL (p, row) {
  WITH p, row WHERE row.attributes IS NOT NULL
  OPTIONAL MATCH (p)-[old:HAS_ATTRIBUTE]->(a:Attribute)
  WHERE NOT a.attribute_id IN [pair IN row.attributes | pair[0] + '=' + pair[1]]
  DELETE old
  WITH DISTINCT p, row
  UNWIND row.attributes AS pair
  MERGE (a:Attribute {attribute_id: pair[0] + '=' + pair[1]})
  ON CREATE SET a.key = pair[0], a.value = pair[1]
  MERGE (p)-[:HAS_ATTRIBUTE]->(a)
}
CALL (p, row) {
  WITH p, row WHERE row.supplier_id IS NOT NULL
  MERGE (s:Supplier {supplier_id: row.supplier_id})
  WITH p, s
  OPTIONAL MATCH (p)-[old:SUPPLIED_BY]->(other:Supplier) WHERE other <> s
  DELETE old
  WITH DISTINCT p, s
  MERGE (p)-[:SUPPLIED_BY]->(s)
}
