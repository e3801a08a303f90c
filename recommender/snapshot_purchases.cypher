// What each customer bought, when last and how often (the derived PURCHASED relationships: the
// current state). One list per purchase: collect would drop a null and misalign parallel lists.
MATCH (c:Customer)-[r:PURCHASED]->(p:Product)
RETURN c.customer_id AS customer, collect([p.product_id, r.last_ts.epochMillis, r.count]) AS bought
