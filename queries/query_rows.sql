-- `query`'s read of a platform table: only the columns the query names,
-- out of the table's own query (call_logs.sql or system_errors.sql, which
-- Postgres flattens, so the other columns are never computed), over the
-- window's whole UTC range in one statement.
SELECT {columns}
FROM (
{rows}
) r
