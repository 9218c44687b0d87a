-- Where the fleet physically is (sites, rooms, racks, devices: layout.rs),
-- one JSON document edited whole; `version` counts edits (optimistic
-- concurrency: an edit names the version it started from).
CREATE TABLE layout (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
