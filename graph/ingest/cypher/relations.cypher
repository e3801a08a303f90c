// Knowledge triples. Labels and keys come from an allow-list (graph/ingest/formats.py); a type
// outside it is an Entity {entity_id: "type:id"}.
UNWIND $rows AS row
<<head_match>>
<<tail_match>>
MERGE (h)-[r:RELATED {relation: row.relation}]->(t)
