-- The text index of recordings (SQLite, in a file of its own next to the store).
-- Each indexed session has a number (never reused, so postings of a deleted session's rows
-- never name another's); a row's key is that number, the stream (0 output, 1 input, 2 marker
-- labels) and the row's place in the stream, packed so that the rows of one session and
-- stream are adjacent and in order.
CREATE TABLE sessions (
    no            INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id    TEXT    NOT NULL UNIQUE,
    -- Bytes of the recording file indexed, always at the end of a line.
    indexed_bytes INTEGER NOT NULL,
    -- 1 once the recording is finished and wholly indexed.
    complete      INTEGER NOT NULL
);
CREATE TABLE chunks (
    key       INTEGER PRIMARY KEY,
    -- The segment that first indexed the row's grams (merges keep the number); NULL while the
    -- row is unsealed and searched by its text.
    seg       INTEGER,
    text      TEXT    NOT NULL,
    -- Where each event's text starts in `text` and its time (varints, see search::chunk).
    events    BLOB    NOT NULL,
    -- The row does not continue the previous row's text / the next row does not continue it.
    after_gap INTEGER NOT NULL,
    gap_after INTEGER NOT NULL
);
CREATE INDEX chunks_unsealed ON chunks (key) WHERE seg IS NULL;
-- Segments of trigram postings (see search::segment): their rows' text size and keys.
CREATE TABLE segments (
    seg        INTEGER PRIMARY KEY AUTOINCREMENT,
    text_bytes INTEGER NOT NULL,
    keys       BLOB    NOT NULL
);
-- For each segment and byte trigram (24 bits), the keys of its rows holding it, ascending, as
-- varint deltas. Keyed by segment first: sealing, merging and dropping a segment are one
-- range, and a query looks up its few grams in each of the few segments.
CREATE TABLE grams (
    seg  INTEGER NOT NULL,
    gram INTEGER NOT NULL,
    keys BLOB    NOT NULL,
    PRIMARY KEY (seg, gram)
) WITHOUT ROWID;
