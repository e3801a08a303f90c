// name: recent_audit_events
// description: The latest admin actions (model activations and rollbacks, merchandising rule
//    changes, key changes): who did what, when, before and after.
// param: limit = 50 (integer) - events returned, newest first
// param: subject_type = null (string) - only this subject type (e.g. ModelVersion); all when null
// example: kgrec cypher run recent_audit_events --param subject_type=ModelVersion --param limit=10
MATCH (e:AuditEvent)
WHERE $subject_type IS NULL OR e.subject_type = $subject_type
RETURN toString(e.ts) AS ts, e.actor AS actor, e.action AS action,
       e.subject_type AS subject_type, e.subject_id AS subject_id, e.before AS before, e.after AS after
ORDER BY e.ts DESC
LIMIT $limit
