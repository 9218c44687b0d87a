-- Alerts, second part (alerts.rs): silences, acknowledgements, and the
-- default rules of a new hub.

-- A silence keeps matching alerts from being sent (they are still
-- evaluated and listed) between starts_ms and ends_ms. Each matcher is
-- optional; all given must match.
CREATE TABLE alert_silences (
    id INTEGER PRIMARY KEY,
    rule_id INTEGER,
    node_id TEXT,
    -- Host labels that must all match, as a JSON object.
    labels TEXT NOT NULL DEFAULT '{}',
    starts_ms INTEGER NOT NULL,
    ends_ms INTEGER NOT NULL,
    comment TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);

-- Quiet hours of a channel (`HH:MM-HH:MM`, UTC): what falls inside waits
-- for their end.
ALTER TABLE alert_channels ADD COLUMN quiet_hours TEXT;

-- Acknowledged: not repeated until it resolves.
ALTER TABLE alerts ADD COLUMN acked_ms INTEGER;
ALTER TABLE alerts ADD COLUMN acked_by TEXT;
ALTER TABLE alerts ADD COLUMN ack_comment TEXT;

-- Defaults: enabled, notifying no channel until one is added to them
-- (PATCH /api/v1/alerts/rules/{id}); each turned off with enabled=false.
INSERT INTO alert_rules (name, kind, for_ms, above, clear, host_group, node_id, channels, enabled, created_ms) VALUES
    ('host down', 'host_down', 120000, NULL, NULL, NULL, NULL, '[]', 1, 0),
    ('disk 90 %', 'disk', 300000, 90, 85, NULL, NULL, '[]', 1, 0),
    ('unit failed', 'unit_failed', 60000, NULL, NULL, NULL, NULL, '[]', 1, 0),
    ('container crash loop', 'container_down', 120000, NULL, NULL, NULL, NULL, '[]', 1, 0);
