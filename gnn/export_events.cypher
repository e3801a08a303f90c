// Storefront events for the models: one row per (customer, product, type) relationship with
// the list of its event times (epoch millis); the export explodes the lists, so a temporal
// split can cut events like order lines. The types are gnn.snapshot.EVENT_KINDS.
MATCH (c:Customer)-[r:VIEWED|CLICKED|ADDED_TO_CART]->(p:Product)
RETURN c.customer_id AS customer, p.product_id AS product, type(r) AS kind,
       [t IN r.ts | t.epochMillis] AS ts
