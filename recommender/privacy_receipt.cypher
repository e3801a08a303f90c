// The erasure's receipt: per store, what was removed. The customer is named by a keyed hash.
CREATE (:AuditEvent {
  event_id: $event_id, ts: datetime($now), actor: $actor, action: 'erase',
  subject_type: 'Customer', subject_id: $subject, before: 'present', after: 'erased',
  receipt: $receipt, reason: $reason
})
