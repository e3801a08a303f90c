// Drift monitoring: order lines per top-level category over the latest $days days of orders,
// counted back from the newest order (data time: a replayed or paused feed still has a window).
// A product's top-level category is the root above its categories, the smallest id when there
// are several: the same rule as the training reference (recommender/drift.py).
MATCH (latest:Order) WITH max(latest.ts) AS newest
MATCH (:Customer)-[:PLACED]->(o:Order)-[:CONTAINS]->(p:Product)
WHERE newest IS NOT NULL AND o.ts > newest - duration({days: $days})
WITH newest, p,
     COLLECT {
       MATCH (p)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..]->(top:Category)
       WHERE NOT (top)-[:SUBCATEGORY_OF]->(:Category)
       RETURN top.category_id ORDER BY top.category_id LIMIT 1
     }[0] AS category
RETURN category, count(*) AS lines, newest.epochMillis AS newest_ms
