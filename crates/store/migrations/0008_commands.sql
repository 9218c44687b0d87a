-- Commands run on hosts: who asked what, how it ended, and its output
-- (capped; JSON array of {stream, data}).
CREATE TABLE commands (
    id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    op TEXT NOT NULL,
    summary TEXT NOT NULL,
    actor TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    role_needed TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    error TEXT,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    truncated INTEGER NOT NULL DEFAULT 0,
    output TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX commands_by_node ON commands (node_id, started_ms DESC);
