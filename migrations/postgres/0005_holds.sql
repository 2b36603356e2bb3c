-- Legal holds: the same table as the SQLite migration 0009. A session with a row here is never
-- deleted by retention (`[recordings] keep`). The foreign key makes a hold wait for (and then
-- fail against) a retention transaction that holds the session's row, and the reverse.
CREATE TABLE holds (
    session_id TEXT   PRIMARY KEY REFERENCES sessions (id),
    held_by    TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    held_at    BIGINT NOT NULL
);
-- Retention looks for a node's ended sessions by their end.
CREATE INDEX sessions_ended ON sessions (node, ended_at);
