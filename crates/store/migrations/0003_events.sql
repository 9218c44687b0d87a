-- The event timeline: state transitions worth a line in history.
CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    node_id TEXT NOT NULL,
    ts      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_node_ts ON events (node_id, ts);
CREATE INDEX events_ts ON events (ts);
