-- Sessions expire after a while without use, as well as at a fixed end.
ALTER TABLE sessions ADD COLUMN last_used INTEGER;
CREATE INDEX sessions_user ON sessions (user_id);
