-- Backup artifacts the hub holds (only complete ones: a failed run is its
-- command's record), and each job's retention as its last run gave it.
CREATE TABLE backups (
    id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    job TEXT NOT NULL,
    command_id TEXT NOT NULL,
    source TEXT NOT NULL,
    object_key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    -- 'complete', or 'corrupt' once a verify found other bytes.
    status TEXT NOT NULL,
    -- Why retention keeps it (e.g. 'keep-daily 2026-12-03').
    retention TEXT NOT NULL DEFAULT '',
    verified_ms INTEGER
);
CREATE INDEX backups_by_job ON backups (node_id, job, created_ms DESC);

CREATE TABLE backup_jobs (
    node_id TEXT NOT NULL,
    job TEXT NOT NULL,
    -- JSON {last, hourly, daily, weekly, monthly, yearly}.
    keep TEXT NOT NULL,
    PRIMARY KEY (node_id, job)
);
