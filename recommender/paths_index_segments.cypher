// Segments with their members (IN_SEGMENT) for the in-memory path index: the "in_segment"
// pattern of paths_customer.cypher.
MATCH (s:Segment)
RETURN s.segment_id AS segment_id, coalesce(s.name, s.segment_id) AS name,
       COLLECT { MATCH (c:Customer)-[:IN_SEGMENT]->(s) RETURN c.customer_id } AS customers,
       COUNT { (s)<-[:IN_SEGMENT]-() } AS degree
ORDER BY segment_id
