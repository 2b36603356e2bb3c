-- The transcript of file sessions (SFTP and scp): the same table as the SQLite migration 0008.
-- One row per operation, in order, with the path it was checked on, the bytes it moved, its
-- result and, when the role asks for it, the SHA-256 of the file transferred. File contents are
-- never stored.
CREATE TABLE file_ops (
    session_id TEXT   NOT NULL,
    seq        BIGINT NOT NULL,
    -- Unix milliseconds.
    at_ms      BIGINT NOT NULL,
    op         TEXT   NOT NULL,
    path       TEXT   NOT NULL,
    to_path    TEXT,
    bytes      BIGINT,
    result     TEXT   NOT NULL,
    sha256     TEXT,
    PRIMARY KEY (session_id, seq)
);
