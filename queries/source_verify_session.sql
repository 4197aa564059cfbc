-- The background totals check: parallel workers would take the cores the
-- COPY streams need. No plain index scans: the planner picks one for a
-- range of a few days (a buffer lookup and a visibility check per row), and
-- the nightly window's totals then cost 0.32-0.40 s of Postgres CPU against
-- 0.21-0.24 s through a bitmap scan (heap pages in order, each visited
-- once); a range that covers most of the table stays a sequential scan
-- (bench/README.md, round three, fourth session).
SET max_parallel_workers_per_gather = 0;
SET enable_indexscan = off;
