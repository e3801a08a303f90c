// Erasure: audit events about the customer (opt-outs) keep the keyed hash, not the id.
OPTIONAL MATCH (e:AuditEvent {subject_type: 'Customer', subject_id: $customer_id})
SET e.subject_id = $subject, e.redacted_at = datetime($now)
RETURN count(e) AS redacted
