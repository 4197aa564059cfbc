-- The run's rows of one table, copied here first when the window already
-- holds rows, then merged: a temporary table writes no WAL and is gone
-- with the transaction, whatever happens.
CREATE TEMPORARY TABLE {staged} (LIKE {schema}.{table}) ON COMMIT DROP
