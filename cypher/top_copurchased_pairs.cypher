// name: top_copurchased_pairs
// description: Product pairs bought in the same order most often, the top k per category of
//    the first product (bundles, cross-sell placements).
// param: k = 10 (integer) - pairs kept per category
// param: min_orders = 2 (integer) - least number of shared orders for a pair to count
// example: kgrec cypher run top_copurchased_pairs --param k=5 --param min_orders=3
MATCH (a:Product)<-[:CONTAINS]-(o:Order)-[:CONTAINS]->(b:Product)
WHERE a.product_id < b.product_id
WITH a, b, count(DISTINCT o) AS orders
WHERE orders >= $min_orders
MATCH (a)-[:IN_CATEGORY]->(c:Category)
WITH c, a, b, orders ORDER BY orders DESC, a.product_id, b.product_id
WITH c, collect({a: a, b: b, orders: orders})[0..$k] AS pairs
UNWIND pairs AS pair
RETURN c.category_id AS category_id, c.name AS category,
       pair.a.product_id AS product_a, pair.a.name AS name_a,
       pair.b.product_id AS product_b, pair.b.name AS name_b, pair.orders AS shared_orders
ORDER BY category_id, shared_orders DESC, product_a, product_b
