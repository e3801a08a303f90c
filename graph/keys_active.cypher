// What the API needs to verify keys: id, hash, role and name of every key not revoked.
MATCH (k:ApiKey)
WHERE k.revoked_at IS NULL
RETURN k.key_id AS key_id, k.hash AS hash, k.role AS role, k.name AS name
