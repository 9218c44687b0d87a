-- The twin's past (journal.rs): per node, checkpoints (the whole state) and
-- the diffs between them, zstd-compressed JSON.
CREATE TABLE journal (
    id         INTEGER PRIMARY KEY,
    node_id    TEXT NOT NULL,
    ts         INTEGER NOT NULL,
    checkpoint INTEGER NOT NULL,
    body       BLOB NOT NULL
);
CREATE UNIQUE INDEX journal_node_ts ON journal (node_id, ts);
CREATE INDEX journal_checkpoints ON journal (node_id, ts) WHERE checkpoint = 1;
CREATE INDEX journal_ts ON journal (ts);
