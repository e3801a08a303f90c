// What the serving snapshot depends on, cheaply: the active model, the latest load or upsert,
// the current forecasts, the events shipped so far, the rules and privacy changes (opt-outs,
// erasures). A change reloads the snapshot.
RETURN
  COLLECT { MATCH (v:ModelVersion {active: true}) RETURN v.version_id }[0] AS model_version,
  COLLECT { MATCH (r:IngestRun) RETURN r.run_id ORDER BY r.started_at DESC LIMIT 1 }[0] AS ingest_run,
  COUNT { (f:Forecast {current: true}) } AS current_forecasts,
  COLLECT { MATCH (f:Forecast {current: true}) RETURN f.model_version LIMIT 1 }[0] AS forecast_version,
  COLLECT { MATCH (c:EventCursor) RETURN c.seq }[..10] AS event_cursors,
  COUNT { (r:MerchandisingRule) } AS rules,
  // Opt-outs and erasures (their AuditEvents): the snapshot's customers and opt-out set.
  COLLECT { MATCH (e:AuditEvent {subject_type: 'Customer'}) RETURN e.event_id ORDER BY e.ts DESC LIMIT 1 }[0] AS privacy
