// A new experiment and its audit event, in one transaction (the caller has checked, in the same
// transaction, that no running experiment shares a surface).
CREATE (e:Experiment)
SET e = $experiment, e.created_at = datetime($now), e.created_by = $actor
CREATE (:AuditEvent {
  event_id: $event_id, ts: datetime($now), actor: $actor, action: 'create',
  subject_type: 'Experiment', subject_id: $experiment.experiment_id,
  before: 'none', after: $after, reason: $reason
})
