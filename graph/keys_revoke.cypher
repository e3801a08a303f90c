// Revokes a key that is still active, with its AuditEvent; no row when the key is unknown or
// already revoked (the caller says which).
MATCH (k:ApiKey {key_id: $key_id})
WHERE k.revoked_at IS NULL
SET k.revoked_at = datetime($now)
CREATE (e:AuditEvent {
  event_id: $event_id, ts: datetime($now), actor: $actor, action: 'revoke_api_key',
  subject_type: 'ApiKey', subject_id: $key_id, before: k.role, after: 'revoked', reason: $reason
})
RETURN k.key_id AS key_id, k.name AS name, k.role AS role,
       k.created_at AS created_at, k.revoked_at AS revoked_at
