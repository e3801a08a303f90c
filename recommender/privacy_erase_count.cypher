// Erasure, first step: what the graph holds of the customer (relationship types, embedding).
MATCH (c:Customer {customer_id: $customer_id})
RETURN COLLECT { MATCH (c)-[r]-() RETURN type(r) } AS types, c.embedding IS NOT NULL AS embedding
