-- Back to the readers' own plans (source_reader_session.sql) after a
-- read in created_at order (source_reader_in_order.sql).
SET enable_indexscan = off;
RESET enable_sort;
