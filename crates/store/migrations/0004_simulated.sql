-- Simulated fleets (`twinbay sim`): which nodes are simulated, which join
-- token enrolled each node, and whether a token was spent on a simulated
-- fleet (such a token may go on enrolling simulated agents until it expires).
ALTER TABLE nodes ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN join_token_id INTEGER REFERENCES join_tokens(id) ON DELETE SET NULL;
ALTER TABLE join_tokens ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0;
-- Counting a token's fleet must not scan every node.
CREATE INDEX nodes_join_token ON nodes (join_token_id);
