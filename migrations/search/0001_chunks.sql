-- The text index of recordings (SQLite, in a file of its own next to the store).
-- Each indexed session has a number; a row's key is that number, the stream (0 output,
-- 1 input, 2 marker labels) and the row's place in the stream, packed so that the rows of
-- one session and stream are adjacent and in order.
CREATE TABLE sessions (
    no            INTEGER PRIMARY KEY,
    session_id    TEXT    NOT NULL UNIQUE,
    -- Bytes of the recording file indexed, always at the end of a line.
    indexed_bytes INTEGER NOT NULL,
    -- 1 once the recording is finished and wholly indexed.
    complete      INTEGER NOT NULL
);
CREATE TABLE chunks (
    key       INTEGER PRIMARY KEY,
    text      TEXT    NOT NULL,
    -- Where each event's text starts in `text` and its time (varints, see search::chunk).
    events    BLOB    NOT NULL,
    -- The row does not continue the previous row's text / the next row does not continue it.
    after_gap INTEGER NOT NULL,
    gap_after INTEGER NOT NULL
);
-- Case-sensitive trigrams of every row's text; the text itself is kept once, in `chunks`.
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text,
    content = '',
    contentless_delete = 1,
    tokenize = 'trigram case_sensitive 1'
);
