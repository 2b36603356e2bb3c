-- The session index: one row per session that reached a target (or the restricted shell),
-- written when it starts and completed when it ends, so a crash leaves a row without an end.
CREATE TABLE sessions (
    id          TEXT    PRIMARY KEY,
    user        TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    grant_id    INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    command     TEXT,
    break_glass INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    bytes_in    INTEGER,
    bytes_out   INTEGER,
    exit_status INTEGER,
    end_reason  TEXT,
    recording   TEXT,
    sha256      TEXT
);
CREATE INDEX sessions_started ON sessions (started_at);
CREATE INDEX sessions_user ON sessions (user, started_at);
CREATE INDEX sessions_target ON sessions (target, started_at);
