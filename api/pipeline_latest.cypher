// The newest pipeline run for an input folder and model: the one a rerun may resume.
MATCH (run:PipelineRun {input: $input, model: $model})
RETURN run ORDER BY run.started_at DESC LIMIT 1
