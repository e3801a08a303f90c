// One row per customer exposed to an experiment: their variant (the first they were shown, in
// case a list came from a worker with an older view), when they were first exposed, the lists
// and items they were shown, and what they did after it, up to $end (when the experiment
// stopped, else now). A click counts when the customer clicked an item recommended to them in
// this experiment after it was first shown to them; cart additions, orders and revenue count
// from the first exposure on, whatever the product (recommendations can move the whole basket).
MATCH (c:Customer)-[w:WAS_RECOMMENDED {experiment_id: $experiment_id}]->(:Product)
WHERE w.ts <= $end
WITH c, min(w.ts) AS first_seen, count(w) AS impressions, count(DISTINCT w.list_id) AS lists,
     collect(DISTINCT w.variant) AS variants
WITH c, first_seen, impressions, lists, variants,
  COUNT {
    MATCH (c)-[s:WAS_RECOMMENDED {experiment_id: $experiment_id}]->(p:Product)
    WITH p, min(s.ts) AS shown_at
    MATCH (c)-[k:CLICKED]->(p)
    UNWIND k.ts AS t
    WITH t, shown_at
    WHERE t >= shown_at AND t <= $end
    RETURN t
  } AS clicks,
  EXISTS {
    MATCH (c)-[a:ADDED_TO_CART]->(:Product)
    WHERE any(t IN a.ts WHERE t >= first_seen AND t <= $end)
  } AS carted,
  COLLECT {
    MATCH (c)-[:PLACED]->(o:Order)-[r:CONTAINS]->(p:Product)
    WHERE o.ts >= first_seen AND o.ts <= $end
    RETURN sum(coalesce(r.quantity, 1) * coalesce(r.unit_price, p.price, 0.0)) AS revenue
  }[0] AS revenue,
  EXISTS {
    MATCH (c)-[:PLACED]->(o:Order)
    WHERE o.ts >= first_seen AND o.ts <= $end
  } AS converted
RETURN c.customer_id AS customer_id, variants, first_seen, lists, impressions, clicks, carted,
       converted, coalesce(revenue, 0.0) AS revenue
