// A new API key (only the hash of its secret; revoked_at is set by revoking) and the AuditEvent
// that records who created it.
CREATE (k:ApiKey {
  key_id: $key_id, name: $name, role: $role, hash: $hash,
  created_at: datetime($now)
})
CREATE (e:AuditEvent {
  event_id: $event_id, ts: datetime($now), actor: $actor, action: 'create_api_key',
  subject_type: 'ApiKey', subject_id: $key_id, before: 'none', after: $role, reason: $reason
})
RETURN k.key_id AS key_id, k.name AS name, k.role AS role,
       k.created_at AS created_at, k.revoked_at AS revoked_at
