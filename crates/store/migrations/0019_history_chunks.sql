-- Metric history kept the way it arrives (store/history.rs, history/codec.rs).
-- The old per-point tables (series, points, rollups) are moved into these by
-- the hub when it opens the store (store/history/legacy.rs), then dropped.

-- A small key per node, and per rollup tier the time before which that
-- tier's buckets are final in chunks (later ones are computed when asked).
CREATE TABLE history_nodes (
    id          INTEGER PRIMARY KEY,
    node_id     TEXT NOT NULL UNIQUE,
    rolled_60   INTEGER NOT NULL,
    rolled_900  INTEGER NOT NULL,
    rolled_3600 INTEGER NOT NULL
);

-- Per node, a dictionary of series names (`cpu`, `disk_used{/}`, ...).
CREATE TABLE history_series (
    node INTEGER NOT NULL,
    idx  INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (node, idx),
    UNIQUE (node, name)
) WITHOUT ROWID;

-- Recent samples: one row per (node, sample time), the whole sample in one
-- compact blob. Sealed into chunks once their window has closed.
CREATE TABLE history_rows (
    node INTEGER NOT NULL,
    ts   INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (node, ts)
) WITHOUT ROWID;

-- Retention and the size cap find old rows by time (appends at the end).
CREATE INDEX history_rows_age ON history_rows (ts);

-- Closed windows of one node: tier 0 holds raw samples (10 min windows);
-- 60, 900 and 3600 hold buckets of that many seconds (1 h, 1 d, 1 d windows).
CREATE TABLE history_chunks (
    id    INTEGER PRIMARY KEY,
    node  INTEGER NOT NULL,
    tier  INTEGER NOT NULL,
    start INTEGER NOT NULL,
    data  BLOB NOT NULL,
    UNIQUE (node, tier, start)
);

CREATE INDEX history_chunks_age ON history_chunks (tier, start);
