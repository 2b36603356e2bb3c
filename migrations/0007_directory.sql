-- The directory's last good state (one row): the snapshot in force, a sync held for an
-- operator, the last failure, and the lease that lets one node at a time read the directory.
CREATE TABLE directory_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    revision      INTEGER NOT NULL,
    snapshot      TEXT,
    synced_at     INTEGER,
    synced_by     TEXT,
    held          TEXT,
    held_at       INTEGER,
    failure       TEXT,
    failed_at     INTEGER,
    lease_node    TEXT,
    lease_until   INTEGER
);
INSERT INTO directory_state (id, revision) VALUES (1, 0);
