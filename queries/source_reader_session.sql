-- The COPY readers: a chunk's range is read through a bitmap scan of the
-- created_at index (heap pages in order, each visited once) rather than a
-- plain index scan (a buffer lookup per row): 7.5 s instead of 8.4 s for
-- the 91 daily ranges of 5 million calls, the single-query floor being
-- 5.2 s. A range that covers most of the table may still be a sequential
-- scan; a one-day range never is (EXPLAIN in bench/README.md).
SET enable_indexscan = off;
