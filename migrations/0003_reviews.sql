-- Reviews of break-glass sessions: the queue is every break-glass session without a row here.
CREATE TABLE reviews (
    session_id TEXT    PRIMARY KEY REFERENCES sessions (id),
    reviewer   TEXT    NOT NULL,
    note       TEXT    NOT NULL,
    at         INTEGER NOT NULL
);
