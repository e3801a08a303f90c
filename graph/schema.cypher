// kgrec graph schema for Neo4j 5.26. Applied at every start; every statement is idempotent.
// $embedding_dimensions comes from KGREC_EMBEDDING_DIMENSIONS.

// -- One uniqueness constraint per node key (DESIGN.md, "The graph") --------------------------
CREATE CONSTRAINT customer_id IF NOT EXISTS FOR (n:Customer) REQUIRE n.customer_id IS UNIQUE;
CREATE CONSTRAINT segment_id IF NOT EXISTS FOR (n:Segment) REQUIRE n.segment_id IS UNIQUE;
CREATE CONSTRAINT region_id IF NOT EXISTS FOR (n:Region) REQUIRE n.region_id IS UNIQUE;
CREATE CONSTRAINT product_id IF NOT EXISTS FOR (n:Product) REQUIRE n.product_id IS UNIQUE;
CREATE CONSTRAINT category_id IF NOT EXISTS FOR (n:Category) REQUIRE n.category_id IS UNIQUE;
CREATE CONSTRAINT brand_id IF NOT EXISTS FOR (n:Brand) REQUIRE n.brand_id IS UNIQUE;
CREATE CONSTRAINT attribute_id IF NOT EXISTS FOR (n:Attribute) REQUIRE n.attribute_id IS UNIQUE;
CREATE CONSTRAINT supplier_id IF NOT EXISTS FOR (n:Supplier) REQUIRE n.supplier_id IS UNIQUE;
CREATE CONSTRAINT order_id IF NOT EXISTS FOR (n:Order) REQUIRE n.order_id IS UNIQUE;
CREATE CONSTRAINT promotion_id IF NOT EXISTS FOR (n:Promotion) REQUIRE n.promotion_id IS UNIQUE;
CREATE CONSTRAINT location_id IF NOT EXISTS FOR (n:Location) REQUIRE n.location_id IS UNIQUE;
CREATE CONSTRAINT entity_id IF NOT EXISTS FOR (n:Entity) REQUIRE n.entity_id IS UNIQUE;
CREATE CONSTRAINT forecast_id IF NOT EXISTS FOR (n:Forecast) REQUIRE n.forecast_id IS UNIQUE;
CREATE CONSTRAINT model_version_id IF NOT EXISTS FOR (n:ModelVersion) REQUIRE n.version_id IS UNIQUE;
CREATE CONSTRAINT ingest_run_id IF NOT EXISTS FOR (n:IngestRun) REQUIRE n.run_id IS UNIQUE;
CREATE CONSTRAINT experiment_id IF NOT EXISTS FOR (n:Experiment) REQUIRE n.experiment_id IS UNIQUE;
CREATE CONSTRAINT audit_event_id IF NOT EXISTS FOR (n:AuditEvent) REQUIRE n.event_id IS UNIQUE;

// -- Lookup indexes the serving path and the jobs filter on ---------------------------------------
// Merchandiser search by name.
CREATE TEXT INDEX product_name IF NOT EXISTS FOR (n:Product) ON (n.name);
// Candidate filters: active products, customers per segment (segment popular fallback).
CREATE INDEX product_active IF NOT EXISTS FOR (n:Product) ON (n.active);
CREATE INDEX customer_segment IF NOT EXISTS FOR (n:Customer) ON (n.segment);
// Incremental exports and temporal splits read orders by time.
CREATE INDEX order_ts IF NOT EXISTS FOR (n:Order) ON (n.ts);
// Active promotions at serving time.
CREATE INDEX promotion_window IF NOT EXISTS FOR (n:Promotion) ON (n.starts_at, n.ends_at);
// The current forecast per product and location.
CREATE INDEX forecast_current IF NOT EXISTS FOR (n:Forecast) ON (n.product_id, n.location_id, n.current);
// The active model version.
CREATE INDEX model_version_active IF NOT EXISTS FOR (n:ModelVersion) ON (n.active);
// Audit trail and lineage, newest first.
CREATE INDEX audit_event_ts IF NOT EXISTS FOR (n:AuditEvent) ON (n.ts);
CREATE INDEX ingest_run_started IF NOT EXISTS FOR (n:IngestRun) ON (n.started_at);
// Explanation paths rank by the recency of the linking interaction.
CREATE INDEX purchased_last_ts IF NOT EXISTS FOR ()-[r:PURCHASED]-() ON (r.last_ts);
// Served lists written back for analysts (WAS_RECOMMENDED), joined on time.
CREATE INDEX was_recommended_ts IF NOT EXISTS FOR ()-[r:WAS_RECOMMENDED]-() ON (r.ts);
// An experiment's report reads its exposures (served lists of experiment traffic).
CREATE INDEX was_recommended_experiment IF NOT EXISTS FOR ()-[r:WAS_RECOMMENDED]-() ON (r.experiment_id);
// Running experiments, read by every API process at each snapshot refresh.
CREATE INDEX experiment_status IF NOT EXISTS FOR (n:Experiment) ON (n.status);

// -- Vector indexes for embeddings of the active model ------------------------------------------
CREATE VECTOR INDEX product_embedding IF NOT EXISTS
FOR (n:Product) ON (n.embedding)
OPTIONS {indexConfig: {`vector.dimensions`: $embedding_dimensions, `vector.similarity_function`: 'cosine'}};
CREATE VECTOR INDEX customer_embedding IF NOT EXISTS
FOR (n:Customer) ON (n.embedding)
OPTIONS {indexConfig: {`vector.dimensions`: $embedding_dimensions, `vector.similarity_function`: 'cosine'}};

// -- API keys (graph/keys.py): looked up by id; only a hash of the secret is stored ----------
CREATE CONSTRAINT api_key_id IF NOT EXISTS FOR (n:ApiKey) REQUIRE n.key_id IS UNIQUE;
// -- Serving: the event shippers' positions and merchandising rules ----------------------------
CREATE CONSTRAINT event_cursor_name IF NOT EXISTS FOR (n:EventCursor) REQUIRE n.name IS UNIQUE;
CREATE CONSTRAINT merchandising_rule_id IF NOT EXISTS FOR (n:MerchandisingRule) REQUIRE n.rule_id IS UNIQUE;
// -- Pipeline runs (api/pipeline.py): one per `kgrec pipeline run`, resumable after a crash --
CREATE CONSTRAINT pipeline_run_id IF NOT EXISTS FOR (n:PipelineRun) REQUIRE n.run_id IS UNIQUE;
CREATE INDEX pipeline_run_started IF NOT EXISTS FOR (n:PipelineRun) ON (n.started_at);
