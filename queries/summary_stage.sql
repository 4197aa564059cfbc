-- Where a table's window already holds rows: the run's rows that differ
-- from the stored ones (`staged`) and the keys of stored rows the run no
-- longer produces (`gone`), copied here first, then merged. Temporary
-- tables write no WAL and are gone with the transaction, whatever happens.
CREATE TEMPORARY TABLE {staged} (LIKE {schema}.{table}) ON COMMIT DROP;
CREATE TEMPORARY TABLE {gone} ON COMMIT DROP AS
    SELECT {key} FROM {schema}.{table} WITH NO DATA
