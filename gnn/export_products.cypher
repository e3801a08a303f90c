// Products for the model snapshot: key, price, creation time (epoch millis), active flag, name.
MATCH (p:Product)
RETURN p.product_id AS id, p.price AS price, p.created_at.epochMillis AS created_ms,
       p.active AS active, p.name AS name
