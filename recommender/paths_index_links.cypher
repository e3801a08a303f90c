// What products link to (category, brand, attribute, entity, or a product through a triple),
// per node and link type, with the node's in-degree for that type: the "shared" and "related"
// patterns of paths_customer.cypher and paths_anchors.cypher, for the in-memory path index.
MATCH (p:Product)-[l:IN_CATEGORY|HAS_BRAND|HAS_ATTRIBUTE|RELATED]->(shared)
WHERE NOT shared:Customer
WITH shared, type(l) AS via, collect({product_id: p.product_id, relation: l.relation}) AS links
RETURN labels(shared) AS labels, via,
       coalesce(shared.category_id, shared.brand_id, shared.attribute_id, shared.entity_id, shared.product_id) AS shared_id,
       coalesce(shared.name, shared.attribute_id) AS shared_name, shared.key AS key, shared.value AS value,
       CASE via
         WHEN 'IN_CATEGORY' THEN COUNT { (shared)<-[:IN_CATEGORY]-() }
         WHEN 'HAS_BRAND' THEN COUNT { (shared)<-[:HAS_BRAND]-() }
         WHEN 'HAS_ATTRIBUTE' THEN COUNT { (shared)<-[:HAS_ATTRIBUTE]-() }
         ELSE COUNT { (shared)<-[:RELATED]-() } END AS degree,
       links
