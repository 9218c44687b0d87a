-- A read-only API token (issue 20): it reads what its role and host groups
-- allow and changes nothing. The REST API refuses its writes (the access
-- check, api/access.rs) and MCP lists no act tools to it.
ALTER TABLE api_tokens ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;
