// The orders this run's purchase events made (one per event: `event-<event_id>`), with how many
// purchase lines each holds: 1 for an event shipped exactly once, 2 or more for a doubled one.
MATCH (o:Order)
WHERE o.order_id STARTS WITH $prefix
OPTIONAL MATCH (o)-[r:CONTAINS]->(:Product)
RETURN o.order_id AS order_id, coalesce(sum(r.lines), 0) AS lines
