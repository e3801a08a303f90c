// Each product's top-level category (the first by id when it sits in several departments):
// products of a department share their yearly season in the pooled regression.
MATCH (p:Product)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..5]->(top:Category)
WHERE NOT (top)-[:SUBCATEGORY_OF]->(:Category)
RETURN p.product_id AS product_id, min(top.category_id) AS group_id
