// Erasure: the shipping cursors keep their last batch's dead letters (JSON text); the
// customer's go. $needle is `"customer_id":<the id as JSON>`, as the shipper writes it.
OPTIONAL MATCH (c:EventCursor)
WHERE any(d IN c.last_dead_letters WHERE d CONTAINS $needle)
WITH c, size(c.last_dead_letters) AS before,
     [d IN c.last_dead_letters WHERE NOT d CONTAINS $needle] AS kept
SET c.last_dead_letters = kept
RETURN coalesce(sum(before - size(kept)), 0) AS removed
