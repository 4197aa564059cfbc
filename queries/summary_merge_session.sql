-- Before the merge statements: no nested loops for the rest of the write
-- transaction. Right after a cold write (or any bulk change) the summary
-- table's statistics are stale until autovacuum analyzes it: the planner
-- then believes the window holds a row or two and joins each stored row to
-- a scan of the whole staged table, which made a 300,000-row merge run for
-- minutes instead of a third of a second. Hash joins are right for every
-- window size here, and the statements left after the merge (reconcile,
-- the ledger) join nothing.
SET LOCAL enable_nestloop = off
