// Which of these orders the graph already holds (a read, by the unique index).
UNWIND $ids AS id
MATCH (o:Order {order_id: id})
RETURN id
