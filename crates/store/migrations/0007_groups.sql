-- Host groups: a user or token may be limited to hosts with given labels
-- (comma-separated `key=value` selectors; NULL sees every host).
ALTER TABLE users ADD COLUMN groups TEXT;
ALTER TABLE api_tokens ADD COLUMN groups TEXT;
