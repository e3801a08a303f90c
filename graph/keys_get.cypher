// One API key by id (without its hash).
MATCH (k:ApiKey {key_id: $key_id})
RETURN k.key_id AS key_id, k.name AS name, k.role AS role,
       k.created_at AS created_at, k.revoked_at AS revoked_at
