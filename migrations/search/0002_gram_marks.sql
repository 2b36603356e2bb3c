-- Posting lists now carry, for each row, where in it the gram is and what follows it
-- (search::grams), which lists written before do not have. The index is emptied: its sessions
-- have no progress any more, so the indexer rebuilds every recording's rows from its file at
-- start, as `gatehouse sessions reindex` does. Session numbers are not reused.
DELETE FROM grams;
DELETE FROM segments;
DELETE FROM chunks;
DELETE FROM sessions;
