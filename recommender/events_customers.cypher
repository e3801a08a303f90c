// Customers named by events (one row per customer in the batch): created if new (brand-new
// customers happen), first_seen kept as the earliest time seen; as ingestion's customers_touch.
UNWIND $rows AS row
WITH row, datetime({epochMillis: row.ts}) AS ts
MERGE (c:Customer {customer_id: row.customer_id})
ON CREATE SET c.personalization = true, c.first_seen = ts
ON MATCH SET c.first_seen = CASE WHEN c.first_seen IS NULL OR ts < c.first_seen THEN ts ELSE c.first_seen END
