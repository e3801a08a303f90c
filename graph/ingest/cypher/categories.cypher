// Categories: name; the parent is replaced by the one given (a category has at most one).
UNWIND $rows AS row
MERGE (c:Category {category_id: row.category_id})
SET c.name = row.name
WITH c, row
WHERE row.parent_id IS NOT NULL
MERGE (parent:Category {category_id: row.parent_id})
WITH c, parent
OPTIONAL MATCH (c)-[old:SUBCATEGORY_OF]->(other:Category)
WHERE other <> parent
DELETE old
WITH DISTINCT c, parent
MERGE (c)-[:SUBCATEGORY_OF]->(parent)
