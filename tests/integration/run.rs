//! `callrollup run` end to end: the summary tables against the contract's
//! definitions computed by Postgres itself, re-runs, windows, tenants,
//! files, roles.

use crate::util::{run, stdout_of, tree, TestDb};

const EXPECTED: &str = include_str!("../fixtures/expected_summary.sql");

const ACTUAL_TENANT_DAILY: &str =
    "SELECT tenant_id::text AS tenant_id, day::text AS day, business_name, timezone,
    calls, completed_calls, failed_calls, billable_seconds,
    stt_cost_usd::text AS stt_cost_usd, llm_cost_usd::text AS llm_cost_usd,
    tts_cost_usd::text AS tts_cost_usd, total_cost_usd::text AS total_cost_usd,
    calls_missing_cost, cost_mismatch_calls, errors, critical_errors, errored_calls, error_rate
    FROM analytics.tenant_daily";
const ACTUAL_OUTCOMES: &str =
    "SELECT tenant_id::text AS tenant_id, day::text AS day, status, outcome, calls,
    billable_seconds, total_cost_usd::text AS total_cost_usd FROM analytics.tenant_daily_outcomes";
const ACTUAL_ERRORS: &str = "SELECT tenant_id::text AS tenant_id, day::text AS day, error_type, severity, errors,
    unresolved_errors, calls_affected, first_seen_at, last_seen_at FROM analytics.tenant_daily_errors";

/// (expected, actual) rows of one summary table for the window.
fn compare(
    db: &TestDb,
    from: &str,
    to: &str,
    expected_view: &str,
    actual: &str,
) -> (Vec<String>, Vec<String>) {
    let mut client = db.client();
    for statement in EXPECTED.split("-- next") {
        client
            .batch_execute(&statement.replace("{from}", from).replace("{to}", to))
            .expect("oracle SQL");
    }
    let fetch = |client: &mut postgres::Client, sql: &str| -> Vec<String> {
        let wrapped = format!(
            "SELECT row_to_json(q)::text FROM ({sql}) q WHERE q.day BETWEEN '{from}' AND '{to}' ORDER BY 1"
        );
        client
            .query(&wrapped, &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let expected = fetch(&mut client, &format!("SELECT * FROM {expected_view}"));
    let actual = fetch(&mut client, actual);
    (expected, actual)
}

fn assert_matches_definitions(db: &TestDb, from: &str, to: &str) {
    for (view, actual) in [
        ("expected_tenant_daily", ACTUAL_TENANT_DAILY),
        ("expected_outcomes", ACTUAL_OUTCOMES),
        ("expected_errors", ACTUAL_ERRORS),
    ] {
        let (expected, actual) = compare(db, from, to, view, actual);
        assert!(
            !expected.is_empty(),
            "{view} is empty: the fixture does not cover {from}..{to}"
        );
        assert_eq!(expected.len(), actual.len(), "{view}: row counts differ");
        for (e, a) in expected.iter().zip(&actual) {
            assert_eq!(e, a, "{view}");
        }
    }
}

#[test]
fn spring_window_across_us_and_eu_dst_equals_postgres_definitions() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    run(
        &db,
        out.path(),
        &["--from", "2026-03-05", "--to", "2026-04-01"],
    );
    assert_matches_definitions(&db, "2026-03-05", "2026-04-01");
}

#[test]
fn autumn_window_with_repeated_local_hours_equals_postgres_definitions() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    run(
        &db,
        out.path(),
        &["--from", "2026-10-22", "--to", "2026-11-03"],
    );
    assert_matches_definitions(&db, "2026-10-22", "2026-11-03");
}

#[test]
fn edge_calls_land_on_their_tenant_local_day() {
    let db = TestDb::with_platform();
    db.exec(crate::util::PLATFORM_DATA);
    db.exec("DELETE FROM system_errors; DELETE FROM call_logs WHERE call_id NOT LIKE 'edge-%'");
    db.migrate();
    let out = tempfile::tempdir().unwrap();
    run(
        &db,
        out.path(),
        &["--from", "2026-03-06", "--to", "2026-03-31"],
    );
    let days = db.rows(
        "SELECT business_name, day::text, calls, timezone FROM analytics.tenant_daily ORDER BY business_name, day",
    );
    assert_eq!(
        days,
        [
            "Acme Plumbing NY|2026-03-07|1|America/New_York",
            "Acme Plumbing NY|2026-03-08|4|America/New_York",
            "Acme Plumbing NY|2026-03-09|1|America/New_York",
            "Adelaide Vets|2026-03-10|1|Australia/Adelaide",
            "Adelaide Vets|2026-03-11|1|Australia/Adelaide",
            "Baker Island Ops|2026-03-30|1|Etc/GMT+12",
            "Baker Island Ops|2026-03-31|1|Etc/GMT+12",
            "Berliner Kanzlei|2026-03-28|1|Europe/Berlin",
            "Berliner Kanzlei|2026-03-29|2|Europe/Berlin",
            "Berliner Kanzlei|2026-03-30|1|Europe/Berlin",
            "Bogus Zone LLC|2026-03-11|1|UTC",
            "Empty Zone LLC|2026-03-11|1|UTC",
            "Kathmandu Dental|2026-03-10|1|Asia/Kathmandu",
            "Kathmandu Dental|2026-03-11|1|Asia/Kathmandu",
            "Kiritimati Dive|2026-03-06|1|Pacific/Kiritimati",
            "No Zone LLC|2026-03-10|1|UTC",
        ]
    );
    // The Kiritimati call at 03-05 23:59:59 local and the Baker Island call
    // at 04-01 00:00 local are outside the window; both were read (the UTC
    // range reaches them) and dropped by the tenant-day filter.
    let findings = db.rows(
        "SELECT kind, tenant_id::text, day::text, rows, example_id FROM analytics.data_quality_findings ORDER BY 1, 2",
    );
    assert_eq!(
        findings,
        [
            "invalid_timezone|a0000000-0000-0000-0000-000000000007|2026-03-10|1|edge-nz-1",
            "invalid_timezone|a0000000-0000-0000-0000-000000000008|2026-03-11|1|edge-nz-2",
            "invalid_timezone|a0000000-0000-0000-0000-000000000009|2026-03-11|1|edge-nz-3",
        ]
    );
}

#[test]
fn rerun_gives_identical_tables_and_files() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    let args = ["--from", "2026-03-07", "--to", "2026-03-10"];
    run(&db, out.path(), &args);
    let tables = |db: &TestDb| {
        [ACTUAL_TENANT_DAILY, ACTUAL_OUTCOMES, ACTUAL_ERRORS]
            .iter()
            .flat_map(|sql| db.rows(&format!("{sql} ORDER BY 1, 2, 3, 4")))
            .collect::<Vec<_>>()
    };
    let first_tables = tables(&db);
    let first_files = tree(out.path());
    assert_eq!(
        first_files.len(),
        4 * 4 * 2,
        "a Parquet and a CSV per table and day"
    );
    run(&db, out.path(), &args);
    assert_eq!(tables(&db), first_tables);
    assert_eq!(tree(out.path()), first_files);
    assert_eq!(
        db.scalar_i64("SELECT count(DISTINCT run_id) FROM analytics.tenant_daily"),
        1,
        "the second run changed no row: each keeps the run that wrote it"
    );
}

#[test]
fn late_call_is_picked_up_by_a_rerun_of_its_day() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    run(
        &db,
        out.path(),
        &["--from", "2026-03-10", "--to", "2026-03-12"],
    );
    let before = db.rows("SELECT calls, total_cost_usd FROM analytics.tenant_daily WHERE tenant_id = 'a0000000-0000-0000-0000-000000000003' AND day = '2026-03-11'");
    db.exec("INSERT INTO call_logs (call_id, tenant_id, status, outcome, stt_cost_usd, llm_cost_usd, tts_cost_usd, total_cost_usd, created_at)
             VALUES ('late-1', 'a0000000-0000-0000-0000-000000000003', 'completed', 'booked', 0.000001, 0, 0, 0.000001, '2026-03-11 12:00+00')");
    run(&db, out.path(), &["--date", "2026-03-11"]);
    let after = db.rows("SELECT calls, total_cost_usd FROM analytics.tenant_daily WHERE tenant_id = 'a0000000-0000-0000-0000-000000000003' AND day = '2026-03-11'");
    let (calls_before, cost_before) = before[0].split_once('|').unwrap();
    let (calls_after, cost_after) = after[0].split_once('|').unwrap();
    assert_eq!(
        calls_after.parse::<i64>().unwrap(),
        calls_before.parse::<i64>().unwrap() + 1
    );
    let diff = cost_after.parse::<f64>().unwrap() - cost_before.parse::<f64>().unwrap();
    assert!(
        (diff - 0.000001).abs() < 1e-9,
        "{cost_before} -> {cost_after}"
    );
    // Days outside the re-run window keep the first run's rows.
    assert_eq!(
        db.scalar_i64("SELECT count(DISTINCT run_id) FROM analytics.tenant_daily"),
        2
    );
    assert_matches_definitions(&db, "2026-03-10", "2026-03-12");
}

#[test]
fn empty_window_succeeds_and_writes_empty_reports() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    let output = run(&db, out.path(), &["--date", "2026-06-15"]);
    assert!(
        stdout_of(&output).contains("calls       0"),
        "{}",
        stdout_of(&output)
    );
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.tenant_daily"),
        0
    );
    let csv = std::fs::read_to_string(
        out.path()
            .join("tenant_daily/day=2026-06-15/tenant_daily.csv"),
    )
    .unwrap();
    assert!(
        csv.starts_with("tenant_id,business_name,timezone,calls,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1);
    assert_eq!(
        db.rows("SELECT status, source_calls FROM analytics.rollup_runs"),
        ["succeeded|0"]
    );
}

#[test]
fn dry_run_writes_nothing() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    let output = run(
        &db,
        &out.path().join("reports"),
        &["--date", "2026-03-10", "--dry-run"],
    );
    assert!(stdout_of(&output).contains("dry run: nothing was written"));
    assert!(stdout_of(&output).contains("total cost"));
    assert!(!out.path().join("reports").exists());
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.rollup_runs"),
        0
    );
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.tenant_daily"),
        0
    );
}

#[test]
fn tenant_filter_replaces_only_that_tenants_rows() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    run(
        &db,
        out.path(),
        &["--from", "2026-03-10", "--to", "2026-03-11"],
    );
    let ny = "a0000000-0000-0000-0000-000000000001";
    // Every NY call of the window changes, so every NY row is rewritten
    // (a row whose figures did not change would keep its first run).
    db.exec(&format!(
        "UPDATE call_logs SET tts_cost_usd = tts_cost_usd + 0.5, total_cost_usd = total_cost_usd + 0.5
         WHERE tenant_id = '{ny}' AND total_cost_usd IS NOT NULL"
    ));
    run(
        &db,
        out.path(),
        &["--from", "2026-03-10", "--to", "2026-03-11", "--tenant", ny],
    );
    let runs = db.rows(&format!(
        "SELECT tenant_id = '{ny}', count(DISTINCT run_id) FROM analytics.tenant_daily GROUP BY 1 ORDER BY 1"
    ));
    assert_eq!(runs, ["false|1", "true|1"]);
    assert_eq!(
        db.scalar_i64("SELECT count(DISTINCT run_id) FROM analytics.tenant_daily"),
        2,
        "the NY rows come from the second run, the rest from the first"
    );
    assert_matches_definitions(&db, "2026-03-10", "2026-03-11");
}

#[test]
fn csv_reports_guard_formula_cells_and_print_six_decimals() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    run(&db, out.path(), &["--date", "2026-03-10"]);
    let csv = std::fs::read_to_string(
        out.path()
            .join("tenant_daily/day=2026-03-10/tenant_daily.csv"),
    )
    .unwrap();
    let row = csv
        .lines()
        .find(|l| l.starts_with("a0000000-0000-0000-0000-00000000000a"))
        .expect("the chicago tenant has calls on 03-10");
    assert!(
        row.contains(r#","'=HYPERLINK(""http://x"")",America/Chicago,"#),
        "{row}"
    );
    let kathmandu = csv
        .lines()
        .find(|l| l.starts_with("a0000000-0000-0000-0000-000000000003"))
        .unwrap();
    let money: Vec<&str> = kathmandu.split(',').skip(7).take(4).collect();
    for m in &money {
        let (_, decimals) = m.split_once('.').unwrap();
        assert_eq!(decimals.len(), 6, "{kathmandu}");
    }
    let expected_total = db.rows("SELECT total_cost_usd::text FROM analytics.tenant_daily WHERE tenant_id = 'a0000000-0000-0000-0000-000000000003' AND day = '2026-03-10'");
    assert_eq!(money[3], expected_total[0]);
    // Parquet files are readable and hold the same rows.
    let parquet = std::fs::File::open(
        out.path()
            .join("tenant_daily/day=2026-03-10/tenant_daily.parquet"),
    )
    .unwrap();
    use polars::prelude::SerReader;
    let df = polars::prelude::ParquetReader::new(parquet)
        .finish()
        .unwrap();
    assert_eq!(
        df.height(),
        db.scalar_i64("SELECT count(*) FROM analytics.tenant_daily") as usize
    );
    assert!(
        df.column("day").is_err(),
        "the day lives in the Hive path, not in the file"
    );
}

#[test]
fn source_role_with_column_grants_only_is_enough() {
    let db = TestDb::with_fixture();
    let role = format!("{}_reader", db.name);
    db.exec(&format!(
        "DROP ROLE IF EXISTS {role};
         CREATE ROLE {role} LOGIN;
         GRANT USAGE ON SCHEMA public TO {role};
         GRANT SELECT (tenant_id, business_name, timezone, status) ON tenants TO {role};
         GRANT SELECT (call_id, tenant_id, status, outcome, stt_cost_usd, llm_cost_usd, tts_cost_usd,
                       total_cost_usd, created_at, duration_seconds) ON call_logs TO {role};
         GRANT SELECT (tenant_id, call_id, error_type, severity, resolved, created_at) ON system_errors TO {role};"
    ));
    let mut reader = url::Url::parse(&db.url).unwrap();
    reader.set_username(&role).unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = db
        .cmd()
        .args(["run", "--from", "2026-03-07", "--to", "2026-03-09", "--out"])
        .arg(out.path())
        .env("DATABASE_URL", reader.as_str())
        .env("CALLROLLUP_TARGET_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_matches_definitions(&db, "2026-03-07", "2026-03-09");

    db.exec(&format!("REVOKE SELECT (outcome) ON call_logs FROM {role}"));
    let output = db
        .cmd()
        .args(["run", "--date", "2026-03-07", "--out"])
        .arg(out.path())
        .env("DATABASE_URL", reader.as_str())
        .env("CALLROLLUP_TARGET_URL", &db.url)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("call_logs") && err.contains("outcome"),
        "{err}"
    );
    db.exec(&format!("DROP OWNED BY {role}; DROP ROLE {role}"));
}

#[test]
fn unconstrained_numeric_costs_take_the_exact_decimal_path() {
    // numeric without a scale cannot be read as micro-dollar integers:
    // the engine must fall back to decimals and still match Postgres.
    let db = TestDb::with_fixture();
    db.exec("ALTER TABLE call_logs ALTER COLUMN stt_cost_usd TYPE numeric, ALTER COLUMN total_cost_usd TYPE numeric(14, 8)");
    let out = tempfile::tempdir().unwrap();
    run(
        &db,
        out.path(),
        &["--from", "2026-03-07", "--to", "2026-03-10"],
    );
    assert_matches_definitions(&db, "2026-03-07", "2026-03-10");
}

#[test]
fn costs_beyond_ten_decimals_are_refused_not_rounded() {
    let db = TestDb::with_fixture();
    db.exec("ALTER TABLE call_logs ALTER COLUMN stt_cost_usd TYPE numeric;
             UPDATE call_logs SET stt_cost_usd = stt_cost_usd + 0.00000000001 WHERE call_id = 'edge-kt-1'");
    let err = run_fails_writing_nothing(&db, "2026-03-11");
    assert!(
        err.contains("stt_cost_usd") && err.contains("more than 10 decimals"),
        "{err}"
    );
}

#[test]
fn a_cost_too_large_to_hold_exactly_is_an_error_naming_the_column_not_a_panic() {
    // 10^20 dollars fits Postgres' numeric and the decoder's 38 digits but
    // not an exact 96-bit amount at 10 decimals: an error, never a panic.
    let db = TestDb::with_fixture();
    db.exec(
        "ALTER TABLE call_logs ALTER COLUMN total_cost_usd TYPE numeric;
             UPDATE call_logs SET total_cost_usd = 1e20 WHERE call_id = 'edge-kt-1'",
    );
    let err = run_fails_writing_nothing(&db, "2026-03-11");
    assert!(
        err.contains("total_cost_usd") && err.contains("more digits than an exact amount"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Runs `--date day`, expects exit 1 and no summary row; returns stderr.
fn run_fails_writing_nothing(db: &TestDb, day: &str) -> String {
    let out = tempfile::tempdir().unwrap();
    let output = db
        .cmd()
        .args(["run", "--date", day, "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.tenant_daily"),
        0
    );
    crate::util::stderr_of(&output)
}

#[test]
fn costs_finer_than_the_stored_six_decimals_fail_reconciliation() {
    let db = TestDb::with_fixture();
    db.exec("ALTER TABLE call_logs ALTER COLUMN total_cost_usd TYPE numeric(14, 8);
             UPDATE call_logs SET total_cost_usd = total_cost_usd + 0.00000040 WHERE call_id IN ('edge-kt-1', 'edge-kt-2')");
    let err = run_fails_writing_nothing(&db, "2026-03-11");
    assert!(
        err.contains("reconciliation failed") && err.contains("more than 6 decimals"),
        "{err}"
    );
}

#[test]
fn chunk_size_stream_count_and_the_one_pass_read_do_not_change_a_byte() {
    // Read in one pass (the default), the window's rows go straight into
    // each chunk's figures; read chunk by chunk (--state-limit 0), chunks
    // share the rows of the 26 hours between them (read once, kept for
    // the next chunk) and streams split each chunk's range. None of it
    // may change a single value.
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let window = ["--from", "2026-03-06", "--to", "2026-03-31"];
    let mut trees = Vec::new();
    for (days, streams, limit) in [
        ("1", "1", "0"),
        ("1", "1", "120"),
        ("5", "2", "0"),
        ("5", "2", "120"),
        ("30", "3", "0"),
        ("30", "3", "120"),
    ] {
        let out = scratch.path().join(format!("{days}-{limit}"));
        let options = [
            "--chunk-days",
            days,
            "--streams",
            streams,
            "--state-limit",
            limit,
        ];
        run(&db, &out, &[&window[..], &options[..]].concat());
        trees.push(tree(&out));
        assert_matches_definitions(&db, "2026-03-06", "2026-03-31");
    }
    for other in &trees[1..] {
        assert_eq!(&trees[0], other);
    }
}

/// The stderr of a successful `run` of `args` into `out`.
fn run_logged(db: &TestDb, out: &std::path::Path, args: &[&str]) -> String {
    crate::util::stderr_of(&run(db, out, args))
}

#[test]
fn a_window_read_in_created_at_order_on_parallel_streams_writes_what_the_chunked_read_does() {
    // Rows stored in created_at order (CLUSTER, then the planner's
    // statistics say so): each stream reads a run of the window's chunks
    // in that order and hands each chunk on as soon as its rows have
    // passed the chunk's end, while later days are still read; rows of
    // the 26 hours where two streams' ranges meet are read by both,
    // kept and counted by one.
    let db = TestDb::with_fixture();
    db.exec(
        "CLUSTER call_logs USING call_logs_created_at_idx;
         CLUSTER system_errors USING system_errors_created_at_idx;
         ANALYZE call_logs, system_errors",
    );
    let scratch = tempfile::tempdir().unwrap();
    let window = ["--from", "2026-03-06", "--to", "2026-03-31"];
    let summary = "SELECT tenant_id::text, day::text, calls::text, errored_calls::text,
                          total_cost_usd::text, errors::text
                   FROM analytics.tenant_daily ORDER BY 1, 2";
    let chunked = scratch.path().join("chunked");
    run_logged(
        &db,
        &chunked,
        &[&window[..], &["--state-limit", "0"]].concat(),
    );
    let expected = (tree(&chunked), db.rows(summary));
    // 26 days give at most 3 streams of at least 7 days (at least as
    // many as --streams or the cores ask for).
    for (days, streams, read_as) in [
        ("1", "3", "in one pass on 3 stream(s), in created_at order"),
        ("5", "2", "stream(s), in created_at order"),
        ("1", "1", "stream(s), in created_at order"),
        ("7", "4", "in one pass on 3 stream(s), in created_at order"),
    ] {
        let out = scratch.path().join(format!("{days}-{streams}"));
        let options = ["--chunk-days", days, "--streams", streams];
        let log = run_logged(&db, &out, &[&window[..], &options[..]].concat());
        assert!(log.contains(read_as), "{log}");
        assert_eq!((tree(&out), db.rows(summary)), expected);
        assert_matches_definitions(&db, "2026-03-06", "2026-03-31");
    }
    // Rows in no particular order on the pages (a random key's order):
    // storage order, every chunk after the read, the same answer.
    db.exec("CLUSTER call_logs USING call_logs_pkey; ANALYZE call_logs");
    let out = scratch.path().join("shuffled");
    let log = run_logged(&db, &out, &window);
    assert!(log.contains("in storage order"), "{log}");
    assert_eq!((tree(&out), db.rows(summary)), expected);
}

/// A call of a tenant whose zone was more than 14 hours ahead of UTC on
/// its date (Sitka's local mean time, +14:58:47 before 1867) lies before
/// the UTC range the engine reads for its tenant day. Read in created_at
/// order on two streams, the stream that owns the day never read it and
/// the one that did skipped it as another's: the call vanished while the
/// rows read still verified. The run now fails saying why.
#[test]
fn a_row_beyond_the_zone_offsets_the_engine_reads_was_dropped_between_two_streams() {
    let db = TestDb::with_fixture();
    db.exec(
        "INSERT INTO tenants (tenant_id, business_name, timezone)
              VALUES ('5e7ca000-0000-4000-8000-000000000001', 'Sitka 1850', 'America/Sitka');
         INSERT INTO call_logs (call_id, tenant_id, status, total_cost_usd, created_at)
         SELECT 'sitka-' || d, '5e7ca000-0000-4000-8000-000000000001', 'completed', 1.000000,
                timestamptz '1850-01-01 20:00+00' + d * interval '1 day'
           FROM generate_series(0, 19) d;
         -- Local 1850-01-11 00:30 in Sitka: UTC 1850-01-10 09:31, before
         -- the 10:00 UTC at which a day read at most 14 hours ahead begins.
         INSERT INTO call_logs (call_id, tenant_id, status, total_cost_usd, created_at)
              VALUES ('sitka-early', '5e7ca000-0000-4000-8000-000000000001', 'completed',
                      2.000000, '1850-01-10 09:31:13+00');
         CLUSTER call_logs USING call_logs_created_at_idx;
         ANALYZE call_logs, system_errors",
    );
    let scratch = tempfile::tempdir().unwrap();
    let output = db
        .cmd()
        .args([
            "run",
            "--from",
            "1850-01-01",
            "--to",
            "1850-01-20",
            "--streams",
            "2",
        ])
        .arg("--out")
        .arg(scratch.path())
        .output()
        .unwrap();
    let log = crate::util::stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("1 row(s) lie outside the UTC range the engine reads for their tenant day"),
        "{log}"
    );
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.tenant_daily"),
        0
    );
}

#[test]
fn a_one_pass_read_that_gives_way_after_writing_chunks_starts_the_run_again_chunk_by_chunk() {
    // The figures outgrow --state-limit (forced by a test fail point:
    // free-text outcomes do it on a real platform) after the read in
    // created_at order handed chunks to the write transaction: the
    // attempt is rolled back and the run starts again chunk by chunk,
    // writing exactly what a chunked run writes.
    let db = crate::util::generated_platform("40", "60000", "16", "2026-03-20", "3");
    let scratch = tempfile::tempdir().unwrap();
    let window = ["--from", "2026-03-06", "--to", "2026-03-19"];
    let chunked = scratch.path().join("chunked");
    run_logged(
        &db,
        &chunked,
        &[&window[..], &["--state-limit", "0"]].concat(),
    );
    let summary = "SELECT tenant_id::text, day::text, calls::text, total_cost_usd::text
                   FROM analytics.tenant_daily ORDER BY 1, 2";
    let expected = (tree(&chunked), db.rows(summary));
    let again = scratch.path().join("again");
    let output = db
        .cmd()
        .env("CALLROLLUP_TEST_FAIL_AT", "state_limit_after_a_chunk")
        .args(["run", "--streams", "2"])
        .args(window)
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    let log = crate::util::stderr_of(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("outgrew the one-pass limit of 120 MiB (run --state-limit): starting again from nothing, reading the window 1 day(s) at a time"),
        "{log}"
    );
    assert_eq!((tree(&again), db.rows(summary)), expected);
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs ORDER BY started_at"),
        ["succeeded", "failed", "succeeded"]
    );
}

#[test]
fn a_window_whose_figures_outgrow_the_state_limit_is_read_chunk_by_chunk() {
    // Outcomes of many texts: the one-pass state outgrows a 1 MiB limit
    // part-way through the read, which then starts again a
    // chunk of days at a time, with nothing written before; the files
    // and tables are those of a one-pass run.
    let db = crate::util::generated_platform_shaped(
        "200",
        "60000",
        "4",
        "2026-03-10",
        "7",
        &["--outcomes", "999"],
    );
    let scratch = tempfile::tempdir().unwrap();
    let window = ["--from", "2026-03-07", "--to", "2026-03-10"];
    let summary =
        "SELECT tenant_id::text, day::text, status, outcome, calls::text, total_cost_usd::text
                   FROM analytics.tenant_daily_outcomes ORDER BY 1, 2, 3, 4";
    let mut seen = Vec::new();
    for limit in ["1", "120"] {
        let out = scratch.path().join(limit);
        let output = db
            .cmd()
            .args(["run", "--state-limit", limit, "-v"])
            .args(window)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let log = crate::util::stderr_of(&output);
        assert!(output.status.success(), "{log}");
        assert_eq!(
            log.contains("outgrew the one-pass limit of 1 MiB"),
            limit == "1",
            "{log}"
        );
        seen.push((tree(&out), db.rows(summary)));
    }
    assert!(seen[0].1.len() > 20_000, "the outcomes were not varied");
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn rows_committed_during_a_run_neither_fail_it_nor_leak_in() {
    // Before the exported snapshot, a call committed between the
    // extraction and Postgres' own totals failed the run ("rows changed
    // during extraction"). Now every read sees the run's snapshot.
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    let window = ["run", "--from", "2026-03-07", "--to", "2026-03-08", "--out"];
    let calls_in_window = "SELECT coalesce(sum(calls), 0)::bigint FROM analytics.tenant_daily";
    db.cmd().args(window).arg(out.path()).assert().success();
    let before = db.scalar_i64(calls_in_window);

    // Hold call_logs so the run blocks at its first COPY, after its
    // snapshot was taken; commit a call in the window while it waits.
    let mut writer = db.client();
    let mut tx = writer.transaction().unwrap();
    tx.batch_execute("LOCK TABLE call_logs IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("callrollup"))
        .args(window)
        .arg(out.path())
        .env("DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    db.wait_for_lock_wait("callrollup-source", "the run never reached call_logs");
    tx.batch_execute(
        "INSERT INTO call_logs (call_id, tenant_id, status, outcome, stt_cost_usd, llm_cost_usd,
                                tts_cost_usd, total_cost_usd, duration_seconds, created_at)
         VALUES ('committed-mid-run', 'a0000000-0000-0000-0000-000000000003', 'completed', 'booked',
                 1, 1, 1, 3, 60, '2026-03-07 12:00+00')",
    )
    .unwrap();
    tx.commit().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        crate::util::stderr_of(&output)
    );
    assert_eq!(
        db.scalar_i64(calls_in_window),
        before,
        "the run saw its snapshot"
    );

    // The next run picks the call up.
    db.cmd().args(window).arg(out.path()).assert().success();
    assert_eq!(db.scalar_i64(calls_in_window), before + 1);
}

#[test]
fn a_zone_name_postgres_reads_as_an_abbreviation_gets_postgres_days() {
    // AT TIME ZONE 'CET' is Postgres' fixed UTC+1 abbreviation, not
    // tzdata's CET zone with summer time: days follow Postgres.
    let db = TestDb::with_fixture();
    db.exec("UPDATE tenants SET timezone = 'cet' WHERE tenant_id = 'a0000000-0000-0000-0000-000000000002'");
    let out = tempfile::tempdir().unwrap();
    run(
        &db,
        out.path(),
        &["--from", "2026-03-27", "--to", "2026-04-01"],
    );
    assert_matches_definitions(&db, "2026-03-27", "2026-04-01");
    assert_eq!(
        db.rows("SELECT DISTINCT timezone FROM analytics.tenant_daily WHERE tenant_id = 'a0000000-0000-0000-0000-000000000002'"),
        ["CET"]
    );
}

#[test]
fn findings_do_not_grow_with_nightly_reruns_of_the_lookback() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    // Ten nights, each redoing its day and the three before it.
    let first = chrono::NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
    for night in 0..10u64 {
        let to = first + chrono::Days::new(night);
        let from = to - chrono::Days::new(3);
        crate::util::run(
            &db,
            out.path(),
            &["--from", &from.to_string(), "--to", &to.to_string()],
        );
    }
    let findings = "SELECT kind, tenant_id::text, day::text, rows, example_id
                    FROM analytics.data_quality_findings ORDER BY 1, 2, 3";
    let after_ten = db.rows(findings);
    // Exactly what one run over the same days leaves.
    crate::util::run(
        &db,
        out.path(),
        &["--from", "2026-03-05", "--to", "2026-03-17"],
    );
    let once = db.rows(findings);
    assert_eq!(after_ten, once);
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.data_quality_findings"),
        once.len() as i64
    );
    // Each row names a succeeded run: the one that first found it (a
    // re-run that finds the same leaves the row as it is).
    assert_eq!(
        db.scalar_i64(
            "SELECT count(*) FROM analytics.data_quality_findings f
             LEFT JOIN analytics.rollup_runs r ON r.run_id = f.run_id AND r.status = 'succeeded'
             WHERE r.run_id IS NULL"
        ),
        0
    );
}

#[test]
fn another_shape_of_data_equals_postgres_definitions() {
    // 40 zones (odd offsets, both hemispheres' DST), 16 error types, 7
    // statuses and 9 outcomes: not the shape the engine was tuned on.
    let db = TestDb::empty();
    crate::util::ok(
        db.cmd()
            .args([
                "generate",
                "--tenants",
                "60",
                "--calls",
                "20000",
                "--days",
                "12",
            ])
            .args([
                "--end",
                "2026-03-14",
                "--seed",
                "3",
                "--transcript-bytes",
                "0",
            ])
            .args([
                "--zones",
                "40",
                "--error-types",
                "16",
                "--statuses",
                "7",
                "--outcomes",
                "9",
            ])
            .output()
            .unwrap(),
    );
    db.migrate();
    assert!(db.scalar_i64("SELECT count(DISTINCT timezone) FROM tenants") > 25);
    assert!(db.scalar_i64("SELECT count(DISTINCT error_type) FROM system_errors") >= 14);
    let out = tempfile::tempdir().unwrap();
    run(
        &db,
        out.path(),
        &["--from", "2026-03-05", "--to", "2026-03-12"],
    );
    assert_matches_definitions(&db, "2026-03-05", "2026-03-12");
}

/// Without a terminal (cron, a log file) a run logged a line per chunk:
/// thirty lines for thirty days. One line for the read now (in one pass,
/// or chunk by chunk); `-v` keeps the per-chunk lines.
#[test]
fn a_log_got_one_line_per_chunk_instead_of_one_per_stage() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    let stderr = |extra: &[&str]| {
        let output = db
            .cmd()
            .args(["run", "--from", "2026-03-05", "--to", "2026-03-12"])
            .args(["--chunk-days", "1"])
            .args(extra)
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    for (read_as, limit) in [
        ("in one pass on 1 stream(s)", "120"),
        ("in 8 chunk(s)", "0"),
    ] {
        let err = stderr(&["--state-limit", limit]);
        assert_eq!(err.matches("callrollup: rollup of ").count(), 0, "{err}");
        let read: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("callrollup: read "))
            .collect();
        assert_eq!(read.len(), 1, "{err}");
        assert!(
            read[0].contains(&format!("2026-03-05..2026-03-12 {read_as}")),
            "{err}"
        );
        let verbose = stderr(&["-v", "--state-limit", limit]);
        assert_eq!(
            verbose.matches("callrollup: rollup of ").count(),
            8,
            "{verbose}"
        );
    }
}
