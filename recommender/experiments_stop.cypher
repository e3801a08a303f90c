// Stops a running experiment (no row when it is unknown or not running), with its audit event.
MATCH (e:Experiment {experiment_id: $experiment_id, status: 'running'})
SET e.status = 'stopped', e.stopped_at = datetime($now), e.stopped_by = $actor
CREATE (:AuditEvent {
  event_id: $event_id, ts: datetime($now), actor: $actor, action: 'stop',
  subject_type: 'Experiment', subject_id: e.experiment_id,
  before: 'running', after: 'stopped', reason: $reason
})
RETURN e
