-- Grants: one user, one role, one target (or pattern), for a bounded time.
CREATE TABLE grants (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user          TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    target        TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    duration_secs INTEGER NOT NULL,
    state         TEXT    NOT NULL,
    break_glass   INTEGER NOT NULL DEFAULT 0,
    requested_at  INTEGER NOT NULL,
    activated_at  INTEGER,
    expires_at    INTEGER,
    ended_at      INTEGER,
    ended_by      TEXT,
    end_reason    TEXT,
    -- The store revision of the last change, so that other processes and nodes can find
    -- what changed since they last looked.
    rev           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX grants_live ON grants (user, state, expires_at);
CREATE INDEX grants_state ON grants (state, expires_at);
CREATE INDEX grants_rev ON grants (rev);

-- One row: the store revision, bumped by every write that changes a grant.
CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE TABLE approvals (
    grant_id INTEGER NOT NULL REFERENCES grants (id),
    approver TEXT    NOT NULL,
    comment  TEXT,
    at       INTEGER NOT NULL,
    PRIMARY KEY (grant_id, approver)
);
