// Ranking weights promoted by experiments, in the order they were promoted: serving applies
// each over the settings' weights of the experiment's surfaces, later ones last.
MATCH (e:Experiment)
WHERE e.promoted_ranking IS NOT NULL
RETURN e.experiment_id AS experiment_id, e.surfaces AS surfaces, e.promoted_ranking AS ranking
ORDER BY e.promoted_at
