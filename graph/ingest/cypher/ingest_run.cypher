// Lineage: one IngestRun per load that wrote to the graph.
MERGE (run:IngestRun {run_id: $run.run_id})
SET run += $run
