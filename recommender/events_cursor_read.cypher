// The log's shipping position as committed (a read; no cursor yet means nothing shipped).
MATCH (c:EventCursor {name: $name})
RETURN c.seq AS seq, c.dead_lettered AS dead_lettered, c.last_dead_letters AS last_dead_letters
