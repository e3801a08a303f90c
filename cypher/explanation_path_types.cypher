// name: explanation_path_types
// description: How served items were produced and explained: counts per surface, strategy and
//    explanation path type (the path_types recorded on WAS_RECOMMENDED; '(not recorded)' when
//    a list was written without them).
// param: days = 30 (integer) - look-back window in days
// param: as_of = null (string) - end of the window (ISO); now when null
// example: kgrec cypher run explanation_path_types --param days=7
WITH coalesce(datetime($as_of), datetime()) AS now
MATCH (:Customer)-[r:WAS_RECOMMENDED]->(:Product)
WHERE r.ts > now - duration({days: $days}) AND r.ts <= now
UNWIND CASE WHEN size(coalesce(r.path_types, [])) = 0 THEN ['(not recorded)'] ELSE r.path_types END AS path_type
RETURN r.surface AS surface, r.strategy AS strategy, path_type, count(*) AS items,
       round(avg(r.rank), 2) AS mean_rank
ORDER BY items DESC, surface, strategy, path_type
