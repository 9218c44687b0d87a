-- Hosts reached over SSH (ssh.rs): the pinned host key and what the API
-- shows (install progress, security state) as one JSON body, rewritten on
-- change. The target (user@host:port) is unique: one record per login.
CREATE TABLE ssh_hosts (
    id         TEXT PRIMARY KEY,
    target     TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    body       TEXT NOT NULL
);
