// Retention run, audited: the cutoff and what was pruned (counts).
CREATE (:AuditEvent {
  event_id: $event_id, ts: datetime($now), actor: $actor, action: 'prune_events',
  subject_type: 'EventRetention', subject_id: $cutoff, before: 'events before ' + $cutoff,
  after: 'pruned', summary: $summary
})
