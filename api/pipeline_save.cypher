// A pipeline run's record, written at every step boundary so a crash loses at most the step
// that was running. Steps are a JSON text (Neo4j properties hold no maps).
MERGE (run:PipelineRun {run_id: $run.run_id})
SET run += $run
