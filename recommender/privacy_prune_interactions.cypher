// Retention: event times older than the cutoff leave an interaction relationship; one left
// with none is deleted. <<rel_type>> comes from an allow-list in recommender/privacy.py.
// Batched: an auto-commit transaction per 10,000 relationships.
MATCH ()-[r:<<rel_type>>]->()
WHERE r.first_ts < datetime($cutoff)
CALL (r) {
  WITH r, [t IN r.ts WHERE t >= datetime($cutoff)] AS kept, size(r.ts) AS before
  FOREACH (_ IN CASE WHEN size(kept) > 0 THEN [1] ELSE [] END |
    SET r.ts = kept, r.count = size(kept), r.first_ts = kept[0], r.last_ts = kept[-1])
  FOREACH (_ IN CASE WHEN size(kept) = 0 THEN [1] ELSE [] END | DELETE r)
  RETURN before - size(kept) AS times, CASE WHEN size(kept) = 0 THEN 1 ELSE 0 END AS deleted
} IN TRANSACTIONS OF 10000 ROWS
RETURN coalesce(sum(times), 0) AS times, coalesce(sum(deleted), 0) AS deleted
