// Moves the position past the batch, in the batch's own transaction (exactly once), and keeps
// the batch's dead letters until the next batch so a crash before the local file write loses none.
MATCH (c:EventCursor {name: $name})
SET c.seq = $seq, c.updated_at = datetime(),
    c.dead_lettered = c.dead_lettered + size($dead_letters), c.last_dead_letters = $dead_letters
