// The customers' views, clicks, cart adds and ratings, for the in-memory path index
// (recommender/path_index.py): the "direct" pattern of paths_customer.cypher. One list per
// interaction (collect would drop a null count or value and misalign parallel lists).
MATCH (c:Customer)-[r:VIEWED|CLICKED|ADDED_TO_CART|RATED]->(p:Product)
RETURN c.customer_id AS customer,
       collect([p.product_id, type(r), r.count, r.last_ts.epochMillis, r.value]) AS rows
