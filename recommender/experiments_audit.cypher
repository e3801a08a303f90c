// An experiment's audit trail, oldest first.
MATCH (a:AuditEvent {subject_type: 'Experiment', subject_id: $experiment_id})
RETURN a ORDER BY a.ts
