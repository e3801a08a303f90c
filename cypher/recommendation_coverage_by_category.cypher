// name: recommendation_coverage_by_category
// description: Share of each category's active products shown at least once in served lists
//    (WAS_RECOMMENDED) over the last days; low coverage means a category the engine ignores.
// param: days = 30 (integer) - look-back window in days
// param: as_of = null (string) - end of the window (ISO); now when null
// example: kgrec cypher run recommendation_coverage_by_category --param days=7
WITH coalesce(datetime($as_of), datetime()) AS now
MATCH (p:Product)-[:IN_CATEGORY]->(c:Category)
WHERE coalesce(p.active, true)
WITH now, c, p,
     COUNT { (:Customer)-[r:WAS_RECOMMENDED]->(p)
             WHERE r.ts > now - duration({days: $days}) AND r.ts <= now } AS times_shown
WITH c, count(p) AS products, sum(CASE WHEN times_shown > 0 THEN 1 ELSE 0 END) AS shown_products,
     sum(times_shown) AS impressions
RETURN c.category_id AS category_id, c.name AS category, products, shown_products, impressions,
       round(100.0 * shown_products / products, 1) AS coverage_pct
ORDER BY coverage_pct, category_id
