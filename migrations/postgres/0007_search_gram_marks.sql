-- Posting lists now carry, for each row, where in it the gram is and what follows it
-- (search::grams), which lists written before do not have. The shared index is emptied: each
-- node's indexer rebuilds the rows of its own recordings from their files at start, as
-- `gatehouse sessions reindex` does. Session and segment numbers are not reused.
DELETE FROM search_grams;
DELETE FROM search_segments;
DELETE FROM search_chunks;
DELETE FROM search_sessions;
