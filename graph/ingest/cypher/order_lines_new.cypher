// Lines of orders created in this batch: no relationship can exist yet, so plain CREATE.
UNWIND $rows AS row
MATCH (o:Order {order_id: row.order_id})
MATCH (p:Product {product_id: row.product_id})
CREATE (o)-[r:CONTAINS]->(p)
SET r = row.values
