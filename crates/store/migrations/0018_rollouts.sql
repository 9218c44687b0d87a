-- Rollouts (rollouts.rs): a signed release sent to many agents in stages.
-- The body is the rollout as the API shows it (JSON), hosts included; it is
-- small (a few hundred bytes a host) and rewritten whole on each change.
CREATE TABLE rollouts (
    id         TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    state      TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX rollouts_created ON rollouts (created_ms);
