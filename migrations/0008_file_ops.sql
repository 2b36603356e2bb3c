-- The transcript of file sessions (SFTP and scp): one row per operation, in order, with the
-- path it was checked on, the bytes it moved, its result and, when the role asks for it, the
-- SHA-256 of the file transferred. File contents are never stored.
CREATE TABLE file_ops (
    session_id TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    -- Unix milliseconds.
    at_ms      INTEGER NOT NULL,
    -- read, write, list, stat, mkdir, rmdir, remove, rename, setstat, symlink, readlink, …
    op         TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    -- The new name of a rename.
    to_path    TEXT,
    bytes      INTEGER,
    -- ok, denied: …, failed: …, interrupted: …
    result     TEXT    NOT NULL,
    sha256     TEXT,
    PRIMARY KEY (session_id, seq)
);
