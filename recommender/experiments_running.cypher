// Running experiments, oldest first: the serving routes traffic by them, creation checks
// surfaces against them.
MATCH (e:Experiment {status: 'running'})
RETURN e ORDER BY e.created_at
