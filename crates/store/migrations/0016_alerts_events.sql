-- Alerts, third part (alerts.rs): rule parameters of the forecast and
-- event kinds, the "backup failed" default, and sealed channel secrets.

-- disk_forecast: fire when a mount is predicted to fill within this long…
ALTER TABLE alert_rules ADD COLUMN within_ms INTEGER;
-- …by a line through this much of its history.
ALTER TABLE alert_rules ADD COLUMN window_ms INTEGER;
-- file_changed: the least risk that fires (`low`, `medium`, `high`, `critical`).
ALTER TABLE alert_rules ADD COLUMN min_risk TEXT;

-- Channel URLs and secrets are stored sealed (ChaCha20-Poly1305 with the
-- hub's DATA_DIR/alerts.key, `sealed:v1:…`); rows from before are sealed
-- by the hub at its next start.

INSERT INTO alert_rules (name, kind, for_ms, above, clear, host_group, node_id, channels, enabled, created_ms) VALUES
    ('backup failed', 'backup_failed', 0, NULL, NULL, NULL, NULL, '[]', 1, 0);
