-- Collection runs of agentless hosts (agentless/collector.rs, store/agentless.rs):
-- what ran, when, how long, and how it went. Kept per node up to a bound.
CREATE TABLE agentless_runs (
    id          INTEGER PRIMARY KEY,
    node_id     TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    -- ok | partial | failed | unreachable
    outcome     TEXT NOT NULL,
    -- JSON: [{"name", "argv", "ms", "outcome", "error"?}]
    commands    TEXT NOT NULL
);
CREATE INDEX agentless_runs_node ON agentless_runs (node_id, id);
