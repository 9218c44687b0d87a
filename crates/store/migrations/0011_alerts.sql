-- Alerts (alerts.rs): where notifications go, what is watched, and every
-- alert that is or was active, so a restart neither loses a firing alert
-- nor notifies it twice.
CREATE TABLE alert_channels (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    -- Signs webhook bodies (HMAC-SHA256); never returned by the API.
    secret TEXT,
    created_ms INTEGER NOT NULL,
    last_ok_ms INTEGER,
    last_error TEXT,
    last_error_ms INTEGER
);

CREATE TABLE alert_rules (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    for_ms INTEGER NOT NULL,
    above REAL,
    clear REAL,
    -- A host group selector (`key=value`) or one node id; NULL: every host.
    host_group TEXT,
    node_id TEXT,
    channels TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_ms INTEGER NOT NULL
);

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    rule_id INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT NOT NULL,
    summary TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    fired_ms INTEGER,
    resolved_ms INTEGER,
    -- The notification of the current state went out (or was not due).
    notified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alerts_active ON alerts (state) WHERE state != 'resolved';
CREATE INDEX alerts_recent ON alerts (id DESC);
