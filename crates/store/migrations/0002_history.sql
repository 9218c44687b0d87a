-- Metric history: raw points and min/avg/max rollups per tier.
-- Series names are stored once per node (`series`), points by series id.

CREATE TABLE series (
    id      INTEGER PRIMARY KEY,
    node_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    UNIQUE (node_id, name)
);

CREATE TABLE points (
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    value     REAL NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;

CREATE INDEX points_ts ON points (ts);

-- tier is the bucket width in seconds: 60, 900, 3600.
CREATE TABLE rollups (
    tier      INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    sum       REAL NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (tier, series_id, ts)
) WITHOUT ROWID;

CREATE INDEX rollups_ts ON rollups (tier, ts);
