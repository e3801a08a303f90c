// Promotions and their one target; <<target_label>> and <<target_key>> come from an allow-list.
UNWIND $rows AS row
MATCH (t:<<target_label>> {<<target_key>>: row.target_id})
MERGE (pr:Promotion {promotion_id: row.promotion_id})
SET pr.name = row.name, pr.discount_pct = row.discount_pct, pr.starts_at = datetime({epochMillis: row.starts_at}),
    pr.ends_at = datetime({epochMillis: row.ends_at}), pr.channel = row.channel,
    pr.target_type = row.target_type, pr.target_id = row.target_id
WITH pr, t
OPTIONAL MATCH (pr)-[old:APPLIES_TO]->(other) WHERE other <> t
DELETE old
WITH DISTINCT pr, t
MERGE (pr)-[:APPLIES_TO]->(t)
