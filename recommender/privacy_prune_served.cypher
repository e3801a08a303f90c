// Retention: served lists written back before the cutoff (WAS_RECOMMENDED, indexed on ts).
MATCH ()-[r:WAS_RECOMMENDED]->()
WHERE r.ts < datetime($cutoff)
CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS
RETURN count(*) AS deleted
