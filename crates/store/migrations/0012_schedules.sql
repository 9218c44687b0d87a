-- Schedules (schedules.rs): commands run on a cron pattern, and each run
-- (bounded per schedule), so a restart neither repeats nor forgets a slot.
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    -- {"node": ID} or {"group": "key=value"} (JSON).
    target TEXT NOT NULL,
    -- The body to run, as the commands API takes it (JSON, kept as given).
    command TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    overlap TEXT NOT NULL DEFAULT 'forbid',
    jitter_secs INTEGER NOT NULL DEFAULT 0,
    -- Catch-up grace; NULL: one period, at most an hour.
    grace_secs INTEGER,
    -- The role runs are checked with: the creator's (or last editor's).
    role TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    -- The next slot the scheduler waits for (nominal, before jitter).
    next_run_ms INTEGER,
    last_run_ms INTEGER,
    schedule_error TEXT
);

CREATE TABLE schedule_runs (
    id INTEGER PRIMARY KEY,
    schedule_id INTEGER NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    -- The slot this run is for (the time it was asked for when run by hand).
    slot_ms INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    -- `dispatched` (the command's status tells the rest), `skipped`,
    -- `missed` or `failed` (never reached the host).
    status TEXT NOT NULL,
    command_id TEXT,
    -- `slot`, `catch_up` or `manual`.
    trigger TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    reason TEXT
);
CREATE INDEX schedule_runs_by_schedule ON schedule_runs (schedule_id, id DESC);
CREATE INDEX schedule_runs_by_node ON schedule_runs (schedule_id, node_id, id DESC);
CREATE INDEX schedule_runs_by_slot ON schedule_runs (schedule_id, slot_ms);
