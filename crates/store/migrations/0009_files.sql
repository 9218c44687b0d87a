-- Watched configuration files: their versions, and their content stored once.
--
-- file_blobs holds each distinct text once, by the SHA-256 of that text.
-- file_contents says which blob a version's content is: a version with a
-- plain hash (verified by the hub: the hash of the text is the version's)
-- is shared fleet-wide (node_id = ''); a keyed version (a file with
-- secrets, redacted) belongs to its node only.
CREATE TABLE file_blobs (
    content_sha TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE file_contents (
    node_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    content_sha TEXT NOT NULL REFERENCES file_blobs (content_sha),
    PRIMARY KEY (node_id, sha256)
);
-- One row per version seen: a change of content, or of state (missing,
-- unreadable). risk/summary/assessment are filled in once the content has
-- arrived (or at once for files whose content does not travel).
CREATE TABLE file_versions (
    id INTEGER PRIMARY KEY,
    node_id TEXT NOT NULL,
    path TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    sha256 TEXT,
    prev_sha256 TEXT,
    -- first_seen, changed, created, deleted, unreadable
    change TEXT NOT NULL,
    state TEXT NOT NULL,
    kind TEXT NOT NULL,
    content TEXT NOT NULL,
    keyed INTEGER NOT NULL DEFAULT 0,
    size INTEGER,
    mode INTEGER,
    risk TEXT,
    summary TEXT NOT NULL DEFAULT '',
    assessment TEXT,
    -- compose files: the image ids their containers ran when this version
    -- was seen ({"service": "sha256:…"}), since a tag like :latest moves.
    images TEXT
);
CREATE INDEX file_versions_by_path ON file_versions (node_id, path, id DESC);
CREATE INDEX file_versions_by_time ON file_versions (ts_ms DESC);
