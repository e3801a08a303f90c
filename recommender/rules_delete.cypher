// Deletes a merchandising rule and audits it; no row when the rule does not exist.
MATCH (r:MerchandisingRule {rule_id: $rule_id})
WITH r, properties(r) AS rule
CREATE (:AuditEvent {
  event_id: $event_id, ts: datetime($now), actor: $actor, action: 'delete',
  subject_type: 'MerchandisingRule', subject_id: $rule_id,
  before: rule.action + ' ' + rule.target_kind + ' ' + rule.target_id, after: 'none'
})
DELETE r
RETURN rule
