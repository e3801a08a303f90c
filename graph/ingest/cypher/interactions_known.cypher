// Which (customer, product) pairs already have a relationship of this type (a read).
// <<rel_type>> comes from an allow-list in graph/ingest/service.py.
UNWIND $rows AS row
MATCH (c:Customer {customer_id: row.customer_id})-[:<<rel_type>>]->(p:Product {product_id: row.product_id})
RETURN row.customer_id AS customer_id, row.product_id AS product_id
