// The newest pipeline runs, for `kgrec pipeline status`.
MATCH (run:PipelineRun)
RETURN run ORDER BY run.started_at DESC LIMIT $limit
