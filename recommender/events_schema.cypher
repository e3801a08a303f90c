// One shipping cursor per event log: concurrent shippers MERGE the same node, never two.
CREATE CONSTRAINT event_cursor_name IF NOT EXISTS FOR (n:EventCursor) REQUIRE n.name IS UNIQUE
