// The category tree for the serving snapshot: names and parents (rules and filters on a category
// reach its subcategories).
MATCH (c:Category)
RETURN c.category_id AS id, c.name AS name,
       COLLECT { MATCH (c)-[:SUBCATEGORY_OF]->(parent:Category) RETURN parent.category_id LIMIT 1 }[0]
         AS parent
ORDER BY id
