// Which of these products the graph holds (events naming others are dead-lettered).
UNWIND $ids AS id
MATCH (p:Product {product_id: id})
RETURN id
