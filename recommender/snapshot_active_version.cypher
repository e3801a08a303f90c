// The active model version and where its artifacts are.
MATCH (v:ModelVersion {active: true})
RETURN v.version_id AS version_id, v.artifacts AS artifacts
