// The receipt again, once the serving snapshot was reloaded (that reload needs the receipt's
// AuditEvent first: it is what changes the snapshot fingerprint).
MATCH (e:AuditEvent {event_id: $event_id})
SET e.receipt = $receipt
