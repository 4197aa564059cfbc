-- Once any table's window already holds rows: index scans and no nested
-- loops for the rest of the write transaction. Right after a cold write
-- (or any bulk change) the summary tables' statistics are stale until
-- autovacuum analyzes them: the planner then believes a table holds a row
-- or two, so each chunk's read-back of one day became a scan of the whole
-- table (it made a re-run over unchanged data cost Postgres more than the
-- cold write), and the merge joined each stored row to a scan of the
-- staged table (a 300,000-row merge ran for minutes instead of a third of
-- a second). Every summary table has an index on `day`, and hash joins
-- are right for every window size here; the statements left after the
-- merge (reconcile, the ledger) are served by indexes too.
SET LOCAL enable_seqscan = off;
SET LOCAL enable_nestloop = off
