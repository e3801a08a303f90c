// Every experiment, newest first.
MATCH (e:Experiment)
RETURN e ORDER BY e.created_at DESC
LIMIT $limit
