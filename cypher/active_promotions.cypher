// name: active_promotions
// description: Promotions running at as_of, their target and how many products they reach
//    (directly, through the category tree, or through the brand).
// param: as_of = null (string) - reference date (ISO); now when null
// example: kgrec cypher run active_promotions --param as_of=2023-04-03
WITH coalesce(datetime($as_of), datetime()) AS now
MATCH (pr:Promotion)-[:APPLIES_TO]->(target)
WHERE pr.starts_at <= now AND now <= pr.ends_at
RETURN pr.promotion_id AS promotion_id, pr.name AS promotion, pr.discount_pct AS discount_pct,
       date(pr.starts_at) AS starts_at, date(pr.ends_at) AS ends_at,
       labels(target)[0] AS target_type, coalesce(target.name, pr.target_id) AS target,
       COUNT { MATCH (p:Product)
               WHERE p = target OR EXISTS { (p)-[:HAS_BRAND]->(target) }
                  OR EXISTS { (p)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..5]->(target) }
               RETURN p } AS products
ORDER BY ends_at, promotion_id
