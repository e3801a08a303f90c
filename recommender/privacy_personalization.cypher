// Opt-out (or back in) of one customer, with its AuditEvent, in one transaction. An unknown
// customer is created with the choice, so the events that ship later find it made. Opting out
// drops the embedding at once (activations write none for opted-out customers).
OPTIONAL MATCH (existing:Customer {customer_id: $customer_id})
WITH existing IS NULL AS created, coalesce(existing.personalization, true) AS previous
MERGE (c:Customer {customer_id: $customer_id})
ON CREATE SET c.first_seen = datetime($now)
SET c.personalization = $enabled, c.personalization_changed_at = datetime($now)
FOREACH (_ IN CASE WHEN $enabled THEN [] ELSE [1] END |
  SET c.embedding = null, c.embedding_version = null)
CREATE (:AuditEvent {
  event_id: $event_id, ts: datetime($now), actor: $actor,
  action: CASE WHEN $enabled THEN 'opt_in' ELSE 'opt_out' END,
  subject_type: 'Customer', subject_id: $customer_id,
  before: CASE WHEN previous THEN 'personalization on' ELSE 'personalization off' END,
  after: CASE WHEN $enabled THEN 'personalization on' ELSE 'personalization off' END,
  reason: $reason
})
RETURN created, previous
