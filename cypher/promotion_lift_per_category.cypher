// name: promotion_lift_per_category
// description: Average units per product and period on promotion against off promotion, per
//    category, from the aggregated sales history (SOLD); lift = on / off.
// param: min_periods = 1 (integer) - least promoted periods for a category to be shown
// example: kgrec cypher run promotion_lift_per_category --param min_periods=4
MATCH (p:Product)-[s:SOLD]->(:Location)
MATCH (p)-[:IN_CATEGORY]->(c:Category)
WITH c, coalesce(s.on_promotion, false) IN [true, 1, '1', 'true'] AS promoted, s.units AS units
WITH c,
     [u IN collect(CASE WHEN promoted THEN units END) WHERE u IS NOT NULL] AS on_units,
     [u IN collect(CASE WHEN NOT promoted THEN units END) WHERE u IS NOT NULL] AS off_units
WHERE size(on_units) >= $min_periods
WITH c, size(on_units) AS promoted_periods, size(off_units) AS regular_periods,
     toFloat(reduce(t = 0.0, u IN on_units | t + u)) / size(on_units) AS units_on_promotion,
     CASE WHEN size(off_units) = 0 THEN NULL
          ELSE toFloat(reduce(t = 0.0, u IN off_units | t + u)) / size(off_units) END AS units_regular
RETURN c.category_id AS category_id, c.name AS category, promoted_periods, regular_periods,
       round(units_on_promotion, 2) AS units_on_promotion, round(units_regular, 2) AS units_regular,
       CASE WHEN units_regular > 0 THEN round(units_on_promotion / units_regular, 2) END AS lift
ORDER BY lift DESC, category_id
