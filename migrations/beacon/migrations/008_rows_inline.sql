-- Issue 25: a result's row (its answer, and the signed event that repeats it) is 3-5 KB. PostgreSQL compresses
-- and moves out of line every row over about 2 KB (TOAST), and here that was half of the database's time per
-- row written. Rows up to a page's size now stay inline, uncompressed; a larger one is TOASTed as before.
-- Existing rows stay as they are. The tables made like this one (the recorder's staging tables, a replay's
-- fresh tables) copy its storage parameters (beacon.infra.projection.storage_of).
ALTER TABLE executions SET (toast_tuple_target = 8160);
