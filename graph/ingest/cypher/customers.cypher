// Customers: segment and region are replaced when given; first_seen keeps the earliest time.
UNWIND $rows AS row
MERGE (c:Customer {customer_id: row.customer_id})
ON CREATE SET c.personalization = true
WITH c, row, CASE WHEN row.first_seen IS NULL THEN NULL ELSE datetime({epochMillis: row.first_seen}) END AS first_seen
SET c.first_seen = CASE
      WHEN c.first_seen IS NULL OR first_seen < c.first_seen THEN coalesce(first_seen, c.first_seen)
      ELSE c.first_seen END,
    c.segment = coalesce(row.segment, c.segment),
    c.region = coalesce(row.region, c.region)
WITH c, row
CALL (c, row) {
  WITH c, row WHERE row.segment IS NOT NULL
  MERGE (s:Segment {segment_id: row.segment})
  ON CREATE SET s.name = row.segment
  WITH c, s
  OPTIONAL MATCH (c)-[old:IN_SEGMENT]->(other:Segment) WHERE other <> s
  DELETE old
  WITH DISTINCT c, s
  MERGE (c)-[:IN_SEGMENT]->(s)
}
CALL (c, row) {
  WITH c, row WHERE row.region IS NOT NULL
  MERGE (r:Region {region_id: row.region})
  ON CREATE SET r.name = row.region
  WITH c, r
  OPTIONAL MATCH (c)-[old:IN_REGION]->(other:Region) WHERE other <> r
  DELETE old
  WITH DISTINCT c, r
  MERGE (c)-[:IN_REGION]->(r)
}
