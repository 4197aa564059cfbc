-- A one-pass read's ranges in created_at order (source/accumulate.rs):
-- the created_at index's order, never a sort of the whole range (a sort
-- sends no row before it has read them all, and spills to disk).
SET enable_indexscan = on;
SET enable_sort = off;
