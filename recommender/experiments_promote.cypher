// Records the winner of a stopped experiment (no row when it is unknown, running or already
// promoted). `promoted_ranking` is what serving applies from now on (JSON, null when the
// winner changes no ranking weight), with the audit event.
MATCH (e:Experiment {experiment_id: $experiment_id, status: 'stopped'})
WHERE e.promoted_variant IS NULL
SET e.promoted_variant = $variant, e.promoted_at = datetime($now), e.promoted_by = $actor,
    e.promoted_ranking = $ranking
CREATE (:AuditEvent {
  event_id: $event_id, ts: datetime($now), actor: $actor, action: 'promote',
  subject_type: 'Experiment', subject_id: e.experiment_id,
  before: $before, after: $after, reason: $reason
})
RETURN e
