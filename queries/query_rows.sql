-- `query`'s read of a platform table: only the columns the query names,
-- out of the table's own query (call_logs.sql or system_errors.sql, which
-- Postgres flattens, so the other columns are never computed), over the
-- window's whole UTC range in one statement. The one-pass read of `run`
-- uses it too, with `order` its ranges' created_at order.
SELECT {columns}
FROM (
{rows}
) r
{order}
