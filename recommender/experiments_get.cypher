MATCH (e:Experiment {experiment_id: $experiment_id})
RETURN e
