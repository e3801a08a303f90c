// Served lists, one relationship per shown item (lists of customers not in the graph are
// skipped: a brand-new visitor has no node until their first event ships).
UNWIND $rows AS row
MATCH (c:Customer {customer_id: row.customer_id})
UNWIND row.items AS item
MATCH (p:Product {product_id: item.product_id})
CREATE (c)-[:WAS_RECOMMENDED {
  ts: datetime(row.ts), rank: item.rank, model_version: row.model_version,
  strategy: item.strategy, surface: row.surface, path_types: item.path_types,
  list_id: row.list_id, experiment_id: row.experiment_id, variant: row.variant
}]->(p)
