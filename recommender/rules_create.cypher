// A new merchandising rule and its audit event, in one transaction.
CREATE (r:MerchandisingRule)
SET r = $rule, r.created_at = datetime($now), r.created_by = $actor
CREATE (:AuditEvent {
  event_id: $event_id, ts: datetime($now), actor: $actor, action: 'create',
  subject_type: 'MerchandisingRule', subject_id: $rule.rule_id,
  before: 'none', after: $rule.action + ' ' + $rule.target_kind + ' ' + $rule.target_id
})
