#!/usr/bin/env python3
"""The same job as `callrollup run`, done by DuckDB: the yardstick of issue 25.

    python3 bench/duckdb_peer.py URL FROM TO [--schema duckdb_peer] [--out DIR]

Reads `tenants`, `call_logs` and `system_errors` through DuckDB's postgres
extension (binary COPY, several ctid-range streams at once), computes the
contract's three summary tables (docs/CONTRACT.md §2) on tenant-local days
with exact decimals, writes them back into SCHEMA's tables (made by
`callrollup migrate --target-schema SCHEMA`) in one transaction (the
window's rows deleted, then inserted), and with --out writes one Parquet
file per table and day, as the engine's report folder holds.

Written from the contract, not from the engine's code, so `bench/run.sh`
also uses its tables as an independent oracle: they must equal the
engine's row for row. Install: pip install duckdb==1.5.5
duckdb-extensions==1.5.5 duckdb-extension-postgres-scanner==1.5.5 (all
from PyPI; the extension is not downloaded at run time).
"""
import argparse
import datetime as dt
import uuid

import duckdb
import duckdb_extensions

# Postgres reads these as fixed-offset abbreviations in AT TIME ZONE
# (docs/CONTRACT.md §2, src/rollup/timezone.rs), ICU CET/MET/EET/WET as
# tzdata zones with summer time; EST/MST/HST are fixed in both, named here
# so that the peer does not depend on ICU agreeing.
FIXED = {"CET": "Etc/GMT-1", "MET": "Etc/GMT-1", "EET": "Etc/GMT-2", "WET": "Etc/GMT",
         "EST": "Etc/GMT+5", "MST": "Etc/GMT+7", "HST": "Etc/GMT+10"}


def literal(text):
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def ident(name):
    """A SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
PLATFORM = "00000000-0000-0000-0000-000000000000"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("day_from")
    p.add_argument("day_to")
    p.add_argument("--schema", default="duckdb_peer")
    p.add_argument("--source-schema", default="public")
    p.add_argument("--out")
    a = p.parse_args()
    d1 = dt.date.fromisoformat(a.day_from)
    d2 = dt.date.fromisoformat(a.day_to)
    # The UTC range holding every tenant-local day of the window.
    lo = dt.datetime.combine(d1, dt.time()) - dt.timedelta(hours=14)
    hi = dt.datetime.combine(d2 + dt.timedelta(days=1), dt.time()) + dt.timedelta(hours=12)
    lo_s, hi_s = f"{lo:%Y-%m-%d %H:%M:%S}+00", f"{hi:%Y-%m-%d %H:%M:%S}+00"
    errs_from = f"{lo - dt.timedelta(days=1):%Y-%m-%d %H:%M:%S}+00"

    con = duckdb.connect()
    duckdb_extensions.import_extension("postgres_scanner", con=con)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH {literal(a.url)} AS pg (TYPE postgres)")
    src, dst = f"pg.{ident(a.source_schema)}", f"pg.{ident(a.schema)}"
    # The extension reads a numeric without a declared precision (or one
    # above 38) as DOUBLE: money would no longer be exact. Refuse it.
    loose = con.execute(
        "SELECT * FROM postgres_query('pg', $$"
        " SELECT column_name FROM information_schema.columns"
        f" WHERE table_schema = {literal(a.source_schema)} AND table_name = 'call_logs'"
        " AND column_name LIKE '%cost_usd' AND data_type = 'numeric'"
        " AND (numeric_precision IS NULL OR numeric_precision > 38) $$)").fetchall()
    if loose:
        raise SystemExit(f"duckdb_peer: {', '.join(c for (c,) in loose)} has no precision of at most 38; "
                         "DuckDB would read it as DOUBLE, so this peer cannot run on this data")

    # Zone names matched as Postgres matches them; tenants are few.
    zones = con.execute(
        "SELECT * FROM postgres_query('pg', $$"
        f" SELECT t.tenant_id, t.business_name, (SELECT n.name FROM pg_timezone_names n"
        f"   WHERE t.timezone <> '' AND lower(n.name) = lower(t.timezone)"
        f"   ORDER BY n.name LIMIT 1) AS zone FROM {ident(a.source_schema)}.tenants t $$)"
    ).fetchall()
    con.execute("CREATE TEMP TABLE zones (tenant_id UUID, business_name VARCHAR, zone VARCHAR, icu VARCHAR)")
    rows = [(t, n, z or "UTC", FIXED.get(z or "UTC", z or "UTC")) for t, n, z in zones]
    rows.append((PLATFORM, "(platform)", "UTC", "UTC"))
    con.executemany("INSERT INTO zones VALUES (?, ?, ?, ?)", rows)

    # Each zone's UTC offset per quarter hour of the range: days by a hash
    # join and an addition, not by an ICU conversion per row (which cost
    # DuckDB more CPU than everything else together). Offsets change on
    # quarter hours of UTC in every zone the generator and tzdata use
    # today; the row-for-row check against the engine would show one that
    # did not.
    con.execute(f"""
        CREATE TEMP TABLE quarter_offsets AS
        SELECT z.icu, q.range AS quarter,
               to_seconds(CAST(epoch(timezone(z.icu, q.range)) - epoch(q.range) AS BIGINT)) AS offset
        FROM (SELECT DISTINCT icu FROM zones) z,
             range(TIMESTAMPTZ '{errs_from}', TIMESTAMPTZ '{hi_s}', INTERVAL 15 MINUTES) q""")
    local_day = "CAST(CAST({at} AS TIMESTAMP) + o.offset AS DATE)"
    w = f"day BETWEEN DATE '{d1}' AND DATE '{d2}'"
    con.execute(f"""
        CREATE TEMP TABLE errored AS
        SELECT call_id, max(created_at) AS last_logged_at
        FROM {src}.system_errors
        WHERE call_id IS NOT NULL AND created_at >= TIMESTAMPTZ '{errs_from}'
        GROUP BY call_id""")
    con.execute(f"""
        CREATE TEMP TABLE calls AS
        SELECT c.tenant_id, coalesce(c.status, 'unknown') AS status,
               coalesce(c.outcome, 'unknown') AS outcome,
               c.stt_cost_usd, c.llm_cost_usd, c.tts_cost_usd, c.total_cost_usd,
               c.duration_seconds,
               {local_day.format(at="c.created_at")} AS day,
               e.last_logged_at >= c.created_at - INTERVAL 24 HOURS AS errored
        FROM {src}.call_logs c
        LEFT JOIN zones z ON z.tenant_id = c.tenant_id
        JOIN quarter_offsets o ON o.icu = coalesce(z.icu, 'UTC')
             AND o.quarter = time_bucket(INTERVAL 15 MINUTES, c.created_at)
        LEFT JOIN errored e ON e.call_id = c.call_id
        WHERE c.created_at >= TIMESTAMPTZ '{lo_s}' AND c.created_at < TIMESTAMPTZ '{hi_s}'""")
    con.execute(f"DELETE FROM calls WHERE NOT ({w})")
    con.execute(f"""
        CREATE TEMP TABLE errors AS
        SELECT coalesce(e.tenant_id, '{PLATFORM}'::UUID) AS tenant_id,
               coalesce(e.error_type, 'unknown') AS error_type,
               coalesce(e.severity, 'unknown') AS severity,
               e.resolved, e.call_id, e.created_at,
               {local_day.format(at="e.created_at")} AS day
        FROM {src}.system_errors e
        LEFT JOIN zones z ON z.tenant_id = coalesce(e.tenant_id, '{PLATFORM}'::UUID)
        JOIN quarter_offsets o ON o.icu = coalesce(z.icu, 'UTC')
             AND o.quarter = time_bucket(INTERVAL 15 MINUTES, e.created_at)
        WHERE e.created_at >= TIMESTAMPTZ '{lo_s}' AND e.created_at < TIMESTAMPTZ '{hi_s}'""")
    con.execute(f"DELETE FROM errors WHERE NOT ({w})")

    money = "DECIMAL(20, 6)"
    run_id = uuid.uuid4()
    con.execute(f"""
        CREATE TEMP TABLE tenant_daily AS
        WITH c AS (
            SELECT tenant_id, day, count(*) AS calls,
                   count(*) FILTER (WHERE status = 'completed') AS completed_calls,
                   count(*) FILTER (WHERE status = 'failed') AS failed_calls,
                   coalesce(sum(duration_seconds), 0) AS billable_seconds,
                   coalesce(sum(stt_cost_usd), 0) AS stt, coalesce(sum(llm_cost_usd), 0) AS llm,
                   coalesce(sum(tts_cost_usd), 0) AS tts, coalesce(sum(total_cost_usd), 0) AS total,
                   count(*) FILTER (WHERE stt_cost_usd IS NULL OR llm_cost_usd IS NULL
                                    OR tts_cost_usd IS NULL OR total_cost_usd IS NULL) AS missing,
                   count(*) FILTER (WHERE total_cost_usd <> stt_cost_usd + llm_cost_usd + tts_cost_usd) AS mismatch,
                   count(*) FILTER (WHERE errored) AS errored_calls
            FROM calls GROUP BY ALL
        ), e AS (
            SELECT tenant_id, day, count(*) AS errors,
                   count(*) FILTER (WHERE severity = 'CRITICAL') AS critical_errors
            FROM errors GROUP BY ALL
        )
        SELECT tenant_id, day, z.business_name, coalesce(z.zone, 'UTC') AS timezone,
               coalesce(c.calls, 0) AS calls, coalesce(c.completed_calls, 0) AS completed_calls,
               coalesce(c.failed_calls, 0) AS failed_calls,
               coalesce(c.billable_seconds, 0)::BIGINT AS billable_seconds,
               coalesce(c.stt, 0)::{money} AS stt_cost_usd, coalesce(c.llm, 0)::{money} AS llm_cost_usd,
               coalesce(c.tts, 0)::{money} AS tts_cost_usd, coalesce(c.total, 0)::{money} AS total_cost_usd,
               coalesce(c.missing, 0) AS calls_missing_cost, coalesce(c.mismatch, 0) AS cost_mismatch_calls,
               coalesce(e.errors, 0) AS errors, coalesce(e.critical_errors, 0) AS critical_errors,
               coalesce(c.errored_calls, 0) AS errored_calls,
               CASE WHEN c.calls > 0 THEN c.errored_calls::DOUBLE / c.calls END AS error_rate,
               '{run_id}'::UUID AS run_id, now() AS computed_at
        FROM c FULL JOIN e USING (tenant_id, day) LEFT JOIN zones z USING (tenant_id)""")
    con.execute(f"""
        CREATE TEMP TABLE tenant_daily_outcomes AS
        SELECT tenant_id, day, status, outcome, count(*) AS calls,
               coalesce(sum(duration_seconds), 0)::BIGINT AS billable_seconds,
               coalesce(sum(total_cost_usd), 0)::{money} AS total_cost_usd,
               '{run_id}'::UUID AS run_id
        FROM calls GROUP BY ALL""")
    con.execute(f"""
        CREATE TEMP TABLE tenant_daily_errors AS
        SELECT tenant_id, day, error_type, severity, count(*) AS errors,
               count(*) FILTER (WHERE resolved = false) AS unresolved_errors,
               count(DISTINCT call_id) AS calls_affected,
               min(created_at) AS first_seen_at, max(created_at) AS last_seen_at,
               '{run_id}'::UUID AS run_id
        FROM errors GROUP BY tenant_id, day, error_type, severity""")

    tables = ["tenant_daily", "tenant_daily_outcomes", "tenant_daily_errors"]
    if a.out:
        for t in tables:
            con.execute(f"COPY (SELECT * EXCLUDE (run_id) FROM {t} ORDER BY ALL) TO {literal(a.out + '/' + t)}"
                        " (FORMAT parquet, PARTITION_BY (day), OVERWRITE_OR_IGNORE)")
    # One transaction: the window's rows replaced, all or nothing.
    con.execute("BEGIN")
    for t in tables:
        con.execute(f"DELETE FROM {dst}.{t} WHERE {w}")
        con.execute(f"INSERT INTO {dst}.{t} SELECT * FROM {t}")
    con.execute("COMMIT")
    written = sum(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)
    print(f"written {written} rows")


if __name__ == "__main__":
    main()
