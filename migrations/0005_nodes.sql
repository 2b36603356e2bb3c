-- The nodes of a cluster (one row on a single node): each node's heartbeat, so every node sees
-- who is up and a node that went silent is declared gone once.
CREATE TABLE nodes (
    name       TEXT    PRIMARY KEY,
    version    TEXT    NOT NULL,
    listen     TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    -- up, stopped or gone.
    state      TEXT    NOT NULL
);
-- The node that ran each session. Rows written before nodes were named have ''.
ALTER TABLE sessions ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_open ON sessions (node) WHERE ended_at IS NULL;
