// Every API key, revoked ones too, oldest first; the hash stays in the database.
MATCH (k:ApiKey)
RETURN k.key_id AS key_id, k.name AS name, k.role AS role,
       k.created_at AS created_at, k.revoked_at AS revoked_at
ORDER BY k.created_at, k.key_id
