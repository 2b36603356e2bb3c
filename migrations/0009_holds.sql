-- Legal holds: a session with a row here is never deleted by retention (`[recordings] keep`).
-- Placing and releasing a hold are audited (`session.held`, `session.released`); this table
-- holds only the hold in force.
CREATE TABLE holds (
    session_id TEXT    PRIMARY KEY REFERENCES sessions (id),
    held_by    TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    held_at    INTEGER NOT NULL
);
-- Retention looks for a node's ended sessions by their end.
CREATE INDEX sessions_ended ON sessions (node, ended_at);
