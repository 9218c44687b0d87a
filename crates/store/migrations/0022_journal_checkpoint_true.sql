-- The journal's queries say `checkpoint = TRUE` (the form PostgreSQL
-- accepts too); SQLite uses a partial index only when the query's term
-- matches the index's, so the index says it the same way.
DROP INDEX journal_checkpoints;
CREATE INDEX journal_checkpoints ON journal (node_id, ts) WHERE checkpoint = TRUE;
