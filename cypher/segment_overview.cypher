// name: segment_overview
// description: Customers per segment, how many bought anything, orders per buyer and how
//    many opted out of personalisation.
// param: min_customers = 1 (integer) - smallest segment shown
// example: kgrec cypher run segment_overview --param min_customers=50
MATCH (c:Customer)
OPTIONAL MATCH (c)-[:IN_SEGMENT]->(s:Segment)
WITH coalesce(s.segment_id, '(none)') AS segment, c,
     COUNT { (c)-[:PLACED]->(:Order) } AS orders
WITH segment, count(c) AS customers, sum(CASE WHEN orders > 0 THEN 1 ELSE 0 END) AS buyers,
     sum(orders) AS orders,
     sum(CASE WHEN c.personalization = false THEN 1 ELSE 0 END) AS opted_out
WHERE customers >= $min_customers
RETURN segment, customers, buyers, orders,
       CASE WHEN buyers > 0 THEN round(toFloat(orders) / buyers, 2) END AS orders_per_buyer,
       opted_out
ORDER BY customers DESC, segment
