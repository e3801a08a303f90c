// Erasure: the customer node with every relationship (purchases, views, clicks, carts,
// ratings, served lists, segment, region) and its embedding (the vector index follows).
MATCH (c:Customer {customer_id: $customer_id})
DETACH DELETE c
