// The log's shipping position, write-locked for the rest of the transaction (the SET takes the
// node's lock): a second shipper waits here and then sees the position the first committed.
MERGE (c:EventCursor {name: $name})
ON CREATE SET c.seq = 0, c.dead_lettered = 0, c.last_dead_letters = [], c.created_at = datetime()
SET c.locked_at = datetime()
RETURN c.seq AS seq, c.dead_lettered AS dead_lettered, c.last_dead_letters AS last_dead_letters
