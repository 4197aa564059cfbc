-- One consistent view of the source for the whole run: the main session
-- opens a repeatable-read, read-only transaction and exports its snapshot;
-- the parallel readers join it (source_snapshot_join.sql). Every chunk,
-- every stream and the totals then see exactly the same rows.
BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;
