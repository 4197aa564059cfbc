-- The background totals check: parallel workers would take the cores the
-- COPY streams need.
SET max_parallel_workers_per_gather = 0;
