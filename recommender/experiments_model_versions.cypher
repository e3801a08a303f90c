// The model versions experiment variants name: whether each exists and can serve, and where its
// artifacts are (serving loads the vectors from there).
UNWIND $version_ids AS version_id
OPTIONAL MATCH (v:ModelVersion {version_id: version_id})
RETURN version_id, v IS NOT NULL AS found, coalesce(v.has_embeddings, false) AS has_embeddings,
       v.artifacts AS artifacts, coalesce(v.active, false) AS active
