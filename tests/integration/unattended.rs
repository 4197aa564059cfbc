//! Running unattended: quality gates that fail the job after the data is
//! written, and a stop signal that leaves nothing half-written.

use crate::util::{
    assert_fails, ok, run, spawn_paused_with_stderr, stdout_of, summary_rows_where, tree, TestDb,
};

/// A database whose `first` days were rolled up into `reports`, with the
/// tables and files as that run left them.
struct RolledUp {
    db: TestDb,
    scratch: tempfile::TempDir,
    out: std::path::PathBuf,
    tables: Vec<String>,
    files: Vec<(std::path::PathBuf, Vec<u8>)>,
}

impl RolledUp {
    fn new(first: &[&str]) -> RolledUp {
        let db = TestDb::with_fixture();
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path().join("reports");
        run(&db, &out, first);
        let tables = summary_rows_where(&db, "analytics", "true", ", run_id");
        let files = tree(&out);
        RolledUp {
            db,
            scratch,
            out,
            tables,
            files,
        }
    }

    /// The tables and files are still what the first run left.
    fn assert_unchanged(&self, context: &str) {
        assert_eq!(
            summary_rows_where(&self.db, "analytics", "true", ", run_id"),
            self.tables,
            "{context}"
        );
        assert_eq!(tree(&self.out), self.files, "{context}");
    }
}

fn run_with(db: &TestDb, out: &std::path::Path, args: &[&str]) -> std::process::Output {
    db.cmd()
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn a_tripped_gate_exits_3_after_the_data_and_findings_are_written() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    let window = ["--from", "2026-03-07", "--to", "2026-03-08"];
    let tripped = run_with(
        &db,
        &out,
        &[
            &window[..],
            &[
                "--fail-on",
                "missing_cost",
                "--fail-on",
                "cost_mismatch>100000",
            ],
        ]
        .concat(),
    );
    let err = assert_fails(&tripped, 3, "quality gate tripped: missing_cost has ");
    assert!(!err.contains("cost_mismatch has"), "{err}");
    let summary = stdout_of(&tripped);
    assert!(summary.contains("succeeded"), "{summary}");
    assert!(summary.contains("gates       missing_cost "), "{summary}");
    assert!(summary.contains("TRIPPED; cost_mismatch "), "{summary}");
    // The run is billed: its rows, findings and files are in place.
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs"),
        ["succeeded"]
    );
    let missing = db.scalar_i64(
        "SELECT sum(rows)::bigint FROM analytics.data_quality_findings WHERE kind = 'missing_cost'",
    );
    assert!(missing > 0);
    assert!(
        summary.contains(&format!("missing_cost {missing} rows > 0 TRIPPED")),
        "{summary}"
    );
    assert!(db.scalar_i64("SELECT count(*) FROM analytics.tenant_daily") > 0);
    assert!(out
        .join("tenant_daily/day=2026-03-08/tenant_daily.csv")
        .exists());

    // A limit above the count passes.
    ok(run_with(
        &db,
        &out,
        &[
            &window[..],
            &["--fail-on", &format!("missing_cost>{missing}")],
        ]
        .concat(),
    ));
    // A kind that does not exist is refused before anything happens.
    let before = db.scalar_i64("SELECT count(*) FROM analytics.rollup_runs");
    assert_fails(
        &run_with(
            &db,
            &out,
            &[&window[..], &["--fail-on", "orphans"]].concat(),
        ),
        2,
        "unknown finding kind",
    );
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.rollup_runs"),
        before
    );
}

/// A run stopped by `signal` at `point`: exit 1, the ledger row failed
/// with the reason, the tables and files as they were.
fn stopped_at(point: &str, signal: i32, name: &str) {
    let window = ["--from", "2026-03-07", "--to", "2026-03-09"];
    let before = RolledUp::new(&window);
    let (db, out) = (&before.db, &before.out);
    db.exec("UPDATE call_logs SET total_cost_usd = total_cost_usd + 2");
    let (mut child, stderr) = spawn_paused_with_stderr(
        Some(db),
        &[&["run"][..], &window[..], &["--out", out.to_str().unwrap()]].concat(),
        point,
        &[],
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(1), "{point}: {stderr}");
    assert!(
        stderr.contains(&format!("stopped by {name} before the commit")),
        "{stderr}"
    );
    assert_eq!(
        db.rows(&format!(
            "SELECT status, coalesce(error, '') LIKE '%stopped by {name}%'
             FROM analytics.rollup_runs ORDER BY started_at"
        )),
        ["succeeded|false", "failed|true"],
        "{point}"
    );
    // No staged file, no journal: the folder is as the first run left it.
    before.assert_unchanged(point);
    // The next run is not held back by anything the stopped one left.
    ok(run_with(db, out, &window));
}

#[test]
fn sigterm_before_the_commit_rolls_back_and_marks_the_run_failed() {
    stopped_at("before_commit", libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_while_staging_removes_the_staged_files() {
    stopped_at("before_seal", libc::SIGINT, "SIGINT");
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_metrics_file_says_success_and_failure_and_keeps_the_last_success() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    let metrics = scratch.path().join("callrollup.prom");
    let window = ["--from", "2026-03-07", "--to", "2026-03-08"];
    let before = chrono::Utc::now().timestamp() as f64;
    ok(run_with(
        &db,
        &out,
        &[&window[..], &["--metrics-file", metrics.to_str().unwrap()]].concat(),
    ));
    let text = std::fs::read_to_string(&metrics).unwrap();
    let success = metric(&text, "callrollup_last_success_timestamp_seconds").unwrap();
    assert!(success >= before, "{text}");
    assert_eq!(metric(&text, "callrollup_last_run_success"), Some(1.0));
    assert_eq!(metric(&text, "callrollup_last_run_exit_code"), Some(0.0));
    let tenant_days = db.scalar_i64("SELECT count(*) FROM analytics.tenant_daily") as f64;
    assert_eq!(
        metric(
            &text,
            "callrollup_last_run_rows_written{table=\"tenant_daily\"}"
        ),
        Some(tenant_days),
        "{text}"
    );
    let missing = db.scalar_i64(
        "SELECT sum(rows)::bigint FROM analytics.data_quality_findings WHERE kind = 'missing_cost'",
    ) as f64;
    assert_eq!(
        metric(
            &text,
            "callrollup_last_run_findings_rows{kind=\"missing_cost\"}"
        ),
        Some(missing)
    );
    assert!(
        text.contains("callrollup_last_run_stage_seconds{stage=\"commit\"}"),
        "{text}"
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "a sample per line: {line}");
    }

    // A failed run (a database that refuses the password): status and exit
    // code change, the last success stays, and no password is written.
    let refused = TestDb::cmd_without_db()
        .args(["run", "--date", "2026-03-08", "--metrics-file"])
        .arg(&metrics)
        .args([
            "--database-url",
            "postgres://nobody:hunter2secret@127.0.0.1:1/none",
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(metric(&text, "callrollup_last_run_success"), Some(0.0));
    assert_eq!(metric(&text, "callrollup_last_run_exit_code"), Some(2.0));
    assert_eq!(
        metric(&text, "callrollup_last_success_timestamp_seconds"),
        Some(success)
    );
    assert!(!text.contains("hunter2secret"));
    assert!(!crate::util::stderr_of(&refused).contains("hunter2secret"));
    // Only the file itself is left: it was written whole.
    let names: Vec<String> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn urls_from_files_and_libpq_variables_work_and_no_password_is_ever_written() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    let metrics = scratch.path().join("callrollup.prom");
    let (url_secret, env_secret) = ("url-s3cret-pw", "env-s3cret-pw");
    let url_file = scratch.path().join("database-url");
    std::fs::write(
        &url_file,
        format!(
            "{}\n",
            db.url
                .replacen("postgres@", &format!("postgres:{url_secret}@"), 1)
        ),
    )
    .unwrap();
    let window = ["--from", "2026-03-07", "--to", "2026-03-08"];
    let mut outputs = Vec::new();
    // The URL from a file (a mounted secret), JSON logs, metrics.
    outputs.push(ok(TestDb::cmd_without_db()
        .arg("run")
        .args(window)
        .args(["--log-format", "json", "--out", out.to_str().unwrap()])
        .arg("--database-url-file")
        .arg(&url_file)
        .arg("--metrics-file")
        .arg(&metrics)
        .env("PGPASSWORD", env_secret)
        .output()
        .unwrap()));
    // No URL at all: libpq's variables name the server.
    let url = url::Url::parse(&db.url).unwrap();
    let libpq = |cmd: &mut assert_cmd::Command| {
        cmd.env("PGHOST", url.host_str().unwrap())
            .env("PGPORT", url.port().unwrap_or(5432).to_string())
            .env("PGUSER", url.username())
            .env("PGDATABASE", &db.name)
            .env("PGPASSWORD", env_secret);
    };
    let mut cmd = TestDb::cmd_without_db();
    cmd.arg("run")
        .args(window)
        .args(["--out", out.to_str().unwrap()])
        .arg("--metrics-file")
        .arg(&metrics);
    libpq(&mut cmd);
    outputs.push(ok(cmd.output().unwrap()));
    let mut cmd = TestDb::cmd_without_db();
    cmd.args(["runs", "--format", "json"]);
    libpq(&mut cmd);
    outputs.push(ok(cmd.output().unwrap()));
    // Failures name the server, never the password.
    let mut cmd = TestDb::cmd_without_db();
    cmd.arg("run")
        .args(window)
        .args(["--source-schema", "nope"]);
    cmd.arg("--database-url-file").arg(&url_file);
    outputs.push(cmd.output().unwrap());
    let mut cmd = TestDb::cmd_without_db();
    cmd.args(["run", "--date", "2026-03-08"]);
    libpq(&mut cmd);
    cmd.env("PGPORT", "1");
    let refused = cmd.output().unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        crate::util::stderr_of(&refused)
    );
    outputs.push(refused);
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs"),
        ["succeeded", "succeeded"]
    );

    let mut everything = std::fs::read_to_string(&metrics).unwrap();
    for o in &outputs {
        everything.push_str(&String::from_utf8_lossy(&o.stdout));
        everything.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    everything.push_str(
        &db.rows("SELECT to_jsonb(r)::text FROM analytics.rollup_runs r")
            .join("\n"),
    );
    assert!(everything.contains("succeeded"));
    for secret in [url_secret, env_secret] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    // A missing URL file is a clear usage error.
    let missing = TestDb::cmd_without_db()
        .args(["run", "--database-url-file", "/nonexistent/url"])
        .output()
        .unwrap();
    assert_fails(
        &missing,
        2,
        "cannot read --database-url-file /nonexistent/url",
    );
}

#[test]
fn the_password_file_is_read_as_libpq_reads_it() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let pgpass = scratch.path().join("pgpass");
    std::fs::write(&pgpass, "# a comment\n*:*:*:postgres:from-pgpass\n").unwrap();
    let runs = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(mode)).unwrap();
        TestDb::cmd_without_db()
            .args(["runs", "--database-url", &db.url])
            .env("PGPASSFILE", &pgpass)
            .output()
            .unwrap()
    };
    // Readable by others: ignored with a warning, as libpq does.
    let open = ok(runs(0o644));
    assert!(crate::util::stderr_of(&open).contains("readable by others and is ignored"));
    let private = ok(runs(0o600));
    assert!(!crate::util::stderr_of(&private).contains("ignored"));
    assert!(!crate::util::stderr_of(&private).contains("from-pgpass"));
}

/// `deploy/roles.sql`, as the README says to apply it.
const ROLES: &str = include_str!("../../deploy/roles.sql");

#[test]
fn the_least_privilege_roles_run_the_engine_and_cannot_read_transcripts() {
    // The roles are the cluster's, created if missing (the script is
    // idempotent); the grants live and die with this test's database.
    let db = TestDb::with_platform();
    db.exec(crate::util::PLATFORM_DATA);
    db.exec(ROLES);
    db.exec(ROLES);
    let as_role = |role: &str| db.url.replacen("postgres@", &format!("{role}@"), 1);
    let (reader, writer) = (as_role("callrollup_reader"), as_role("callrollup_writer"));
    let owner = as_role("callrollup_owner");
    let scratch = tempfile::tempdir().unwrap();
    // The nightly credential cannot migrate (it creates nothing)...
    let refused = TestDb::cmd_without_db()
        .args(["migrate", "--database-url", &writer])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "the writer migrated");
    // ...the owner role does.
    ok(TestDb::cmd_without_db()
        .args(["migrate", "--database-url", &owner])
        .output()
        .unwrap());
    let window = ["--from", "2026-03-07", "--to", "2026-03-08"];
    ok(TestDb::cmd_without_db()
        .arg("run")
        .args(window)
        .args(["--database-url", &reader, "--target-url", &writer, "--out"])
        .arg(scratch.path().join("reports"))
        .output()
        .unwrap());
    // One URL for both: the writer is a member of the reader.
    let run_as_writer = || {
        ok(TestDb::cmd_without_db()
            .arg("run")
            .args(window)
            .args(["--database-url", &writer, "--out"])
            .arg(scratch.path().join("reports"))
            .output()
            .unwrap())
    };
    run_as_writer();
    assert!(db.scalar_i64("SELECT count(*) FROM analytics.tenant_daily") > 0);
    assert_eq!(
        db.rows("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'analytics'"),
        ["callrollup_owner"]
    );
    // A run that restates a day: the writer records it, and cannot take
    // it back, change it or drop it.
    db.exec(
        "UPDATE call_logs SET total_cost_usd = total_cost_usd + 1
          WHERE call_id = (SELECT call_id FROM call_logs
                            WHERE created_at >= '2026-03-07 12:00+00' AND created_at < '2026-03-08'
                              AND total_cost_usd IS NOT NULL
                            ORDER BY call_id LIMIT 1)",
    );
    run_as_writer();
    assert!(db.scalar_i64("SELECT count(*) FROM analytics.restatements") > 0);
    let mut as_writer = postgres::Client::connect(&writer, postgres::NoTls).unwrap();
    crate::util::assert_refused(
        &mut as_writer,
        &[
        "DELETE FROM analytics.restatements",
        "UPDATE analytics.restatements SET new_values = old_values",
        "TRUNCATE analytics.restatements",
        "DROP TABLE analytics.restatements",
        "ALTER TABLE analytics.restatements DISABLE TRIGGER ALL",
        "INSERT INTO analytics.restatement_alerts (alert, restatement_id) SELECT 'closed-books', restatement_id FROM analytics.restatements",
        "CREATE TABLE analytics.anything (x int)",
        ],
    );
    // Even a grant given by mistake does not let it rewrite the history.
    db.exec("GRANT DELETE, UPDATE ON analytics.restatements TO callrollup_writer");
    let e = as_writer
        .batch_execute("DELETE FROM analytics.restatements")
        .unwrap_err();
    assert!(
        e.to_string().contains("append-only") || format!("{e:?}").contains("append-only"),
        "{e:?}"
    );
    db.exec("REVOKE DELETE, UPDATE ON analytics.restatements FROM callrollup_writer");
    // Postgres itself keeps the reader from everything else.
    let mut client = postgres::Client::connect(&reader, postgres::NoTls).unwrap();
    crate::util::assert_refused(
        &mut client,
        &[
            "SELECT transcript FROM call_logs LIMIT 1",
            "SELECT error_message FROM system_errors LIMIT 1",
            "SELECT phone_number FROM tenants LIMIT 1",
            "SELECT * FROM call_logs LIMIT 1",
        ],
    );
    assert!(client
        .query("SELECT call_id, total_cost_usd FROM call_logs LIMIT 1", &[])
        .is_ok());
    // And the reader cannot write the summary.
    assert!(client
        .batch_execute("DELETE FROM analytics.tenant_daily")
        .is_err());

    // The reporting role runs the people's commands on the engine's
    // schema alone (as the target: there is no source it may read).
    let reporter = as_role("callrollup_reporter");
    let reports = |args: &[&str]| {
        ok(TestDb::cmd_without_db()
            .args(args)
            .args(["--target-url", &reporter])
            .output()
            .unwrap())
    };
    reports(&["runs"]);
    reports(&["costs", "--from", "2026-03-07", "--to", "2026-03-08"]);
    reports(&["changes", "--month", "2026-03"]);
    // The alert's marks are the alert role's to write, not the reporter's
    // (`serve` holds that one).
    let refused = TestDb::cmd_without_db()
        .args([
            "changes",
            "--alert",
            "closed-books",
            "--target-url",
            &reporter,
        ])
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "the reporter marked runs reported"
    );
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.restatement_alerts"),
        0
    );
    ok(TestDb::cmd_without_db()
        .args(["changes", "--alert", "closed-books", "--target-url"])
        .arg(as_role("callrollup_alerts"))
        .output()
        .unwrap());
    assert!(db.scalar_i64("SELECT count(*) FROM analytics.restatement_alerts") > 0);
    reports(&["errors", "--from", "2026-03-07", "--to", "2026-03-08"]);
    reports(&[
        "query",
        "SELECT sum(calls) AS calls FROM tenant_daily",
        "--from",
        "2026-03-07",
        "--to",
        "2026-03-08",
    ]);
    let mut client = postgres::Client::connect(&reporter, postgres::NoTls).unwrap();
    crate::util::assert_refused(
        &mut client,
        &[
            "SELECT call_id FROM call_logs LIMIT 1",
            "DELETE FROM analytics.tenant_daily",
            "DELETE FROM analytics.restatements",
        ],
    );
}

/// A run paused at `pause` (between two chunks, or in the middle of the
/// source's read) while `connections` (by application name) are
/// terminated from outside, then let go; returns its exit status and
/// stderr.
fn with_connections_terminated(
    db: &TestDb,
    out: &std::path::Path,
    window: &[&str],
    application: &str,
    pause: &str,
) -> (std::process::ExitStatus, String) {
    let resume = out.with_extension("resume");
    let (mut child, stderr) = spawn_paused_with_stderr(
        Some(db),
        &[&["run"][..], window, &["--out", out.to_str().unwrap()]].concat(),
        pause,
        &[("CALLROLLUP_TEST_RESUME_FILE", &resume)],
    );
    let killed = db.scalar_i64(&format!(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = '{}' AND application_name = '{application}') t",
        db.name
    ));
    assert!(killed > 0, "no {application} connection to terminate");
    std::fs::write(&resume, b"").unwrap();
    let status = child.wait().unwrap();
    (status, stderr.join().unwrap())
}

#[test]
fn a_source_connection_terminated_mid_extraction_is_retried_and_the_run_succeeds() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let window = ["--from", "2026-03-05", "--to", "2026-03-12"];
    let (status, stderr) = with_connections_terminated(
        &db,
        &scratch.path().join("a"),
        &window,
        "callrollup-source",
        "source_read",
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("transient failure"), "{stderr}");
    assert!(stderr.contains("retry 1 of 3"), "{stderr}");
    // The failed attempt says so; the retry is the run that counts.
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs ORDER BY started_at"),
        ["failed", "succeeded"]
    );
    // Exactly what an undisturbed run gives.
    let disturbed = summary_rows_where(&db, "analytics", "true", "");
    ok(run_with(&db, &scratch.path().join("b"), &window));
    assert_eq!(summary_rows_where(&db, "analytics", "true", ""), disturbed);
    assert_eq!(
        tree(&scratch.path().join("a")),
        tree(&scratch.path().join("b"))
    );
}

/// A window read in one pass handed its first chunk to the write
/// transaction only once it was read whole (now: once the read has passed
/// the chunk's end, still long after the transaction opened); that
/// transaction sat idle all the while and the server ended it
/// (idle_in_transaction_session_timeout is the statement timeout), so a
/// read longer than --statement-timeout failed the run. The pause holds
/// the first chunk back for three timeouts.
#[test]
fn a_write_transaction_idle_through_a_long_read_was_ended_by_the_server() {
    let db = TestDb::with_fixture();
    db.migrate();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out");
    let resume = scratch.path().join("resume");
    let (mut child, stderr) = spawn_paused_with_stderr(
        Some(&db),
        &[
            "run",
            "--from",
            "2026-03-05",
            "--to",
            "2026-03-12",
            "--statement-timeout",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        "one_pass_read",
        &[("CALLROLLUP_TEST_RESUME_FILE", &resume)],
    );
    // Three statement timeouts of reading, as a long read would take.
    std::thread::sleep(std::time::Duration::from_secs(3));
    std::fs::write(&resume, b"").unwrap();
    let status = child.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs"),
        ["succeeded"]
    );
}

#[test]
fn a_target_connection_terminated_mid_write_rolls_back_and_the_rerun_succeeds() {
    let before = RolledUp::new(&["--from", "2026-03-05", "--to", "2026-03-06"]);
    let (db, out) = (&before.db, &before.out);
    let window = ["--from", "2026-03-05", "--to", "2026-03-12"];
    let (status, stderr) =
        with_connections_terminated(db, out, &window, "callrollup", "between_chunks");
    // Once rows went in, a lost target is final: no retry, nothing written.
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("transient failure"), "{stderr}");
    before.assert_unchanged("target terminated");
    // The re-run marks the stopped one abandoned and does the work.
    ok(run_with(db, out, &window));
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs ORDER BY started_at"),
        ["succeeded", "failed", "succeeded"]
    );
}

#[test]
fn a_kill_between_chunks_inside_the_write_transaction_loses_nothing() {
    let before = RolledUp::new(&["--from", "2026-03-05", "--to", "2026-03-06"]);
    let (db, out) = (&before.db, &before.out);
    let window = ["--from", "2026-03-05", "--to", "2026-03-12"];
    // Extracted, staged and copied in: a chunk's rows are in the open
    // transaction when the process dies.
    let (mut child, _) = spawn_paused_with_stderr(
        Some(db),
        &[&["run"][..], &window[..], &["--out", out.to_str().unwrap()]].concat(),
        "between_chunks",
        &[],
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        summary_rows_where(db, "analytics", "true", ", run_id"),
        before.tables
    );
    // Its staged files are temporaries, invisible to readers (dot names).
    assert_eq!(crate::util::visible(out), before.files);
    // The ledger never calls the killed run succeeded; its lock died with it.
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs ORDER BY started_at"),
        ["succeeded", "running"]
    );
    // The re-run gives exactly an undisturbed run's tables and files.
    ok(run_with(db, out, &window));
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs ORDER BY started_at"),
        ["succeeded", "failed", "succeeded"]
    );
    let rerun = summary_rows_where(db, "analytics", "true", "");
    let clean = before.scratch.path().join("clean");
    ok(run_with(db, &clean, &window));
    assert_eq!(summary_rows_where(db, "analytics", "true", ""), rerun);
    assert_eq!(tree(out), tree(&clean));
}

#[test]
fn report_files_that_cannot_be_written_fail_the_run_and_change_nothing() {
    use std::os::unix::process::CommandExt;
    let window = ["--from", "2026-03-05", "--to", "2026-03-08"];
    let before = RolledUp::new(&window);
    let (db, out) = (&before.db, &before.out);
    db.exec("UPDATE call_logs SET total_cost_usd = total_cost_usd + 2");
    // A file-size limit (as a full or tiny disk would): the first report
    // file over 4 KiB cannot be written.
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("callrollup"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .arg("run")
        .args(window)
        .arg("--out")
        .arg(out);
    // SAFETY: setrlimit is async-signal-safe; it runs in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let failed = cmd.output().unwrap();
    assert_fails(&failed, 1, "File too large");
    // No partial or staged file is left.
    before.assert_unchanged("file-size limit");
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs ORDER BY started_at"),
        ["succeeded", "failed"]
    );
}

#[test]
fn log_lines_carry_the_run_id_and_follow_quiet_and_verbose() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    let window = ["--from", "2026-03-07", "--to", "2026-03-08"];
    // Quiet: nothing on stderr, the summary on stdout.
    let quiet = ok(run_with(&db, &out, &[&window[..], &["-q"]].concat()));
    assert_eq!(crate::util::stderr_of(&quiet), "");
    assert!(stdout_of(&quiet).contains("succeeded"));
    // Verbose: each stage starts and ends, with its duration; every line
    // from the ledger row on names the run.
    let verbose = ok(run_with(&db, &out, &[&window[..], &["-v"]].concat()));
    let err = crate::util::stderr_of(&verbose);
    let run_id = db
        .rows("SELECT run_id FROM analytics.rollup_runs ORDER BY started_at DESC LIMIT 1")[0]
        .clone();
    assert!(err.contains("callrollup: stage files: started"), "{err}");
    assert!(err.contains("callrollup: commit: done in "), "{err}");
    let from_run: Vec<&str> = err
        .lines()
        .skip_while(|l| !l.contains(&format!("run {run_id} for")))
        .collect();
    assert!(from_run.len() > 5, "{err}");
    assert!(
        from_run
            .iter()
            .all(|l| l.ends_with(&format!("(run {run_id})"))),
        "{err}"
    );
    assert!(err.contains("calls and"), "chunk lines count rows: {err}");
    // JSON: one object per line, the run id as a field.
    let json = ok(run_with(
        &db,
        &out,
        &[&window[..], &["--log-format", "json"]].concat(),
    ));
    let lines: Vec<serde_json::Value> = crate::util::stderr_of(&json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l["run_id"].is_string()), "{lines:?}");
    // Not a terminal: no progress bar drawing characters.
    assert!(!err.contains('\u{2588}') && !err.contains('\r'));
}

#[test]
fn sigterm_between_chunks_rolls_back_the_open_transaction() {
    stopped_at("between_chunks", libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigterm_after_the_commit_lets_the_run_finish_its_files() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    let window = ["--from", "2026-03-07", "--to", "2026-03-08"];
    let (mut child, stderr) = spawn_paused_with_stderr(
        Some(&db),
        &[&["run"][..], &window[..], &["--out", out.to_str().unwrap()]].concat(),
        "after_commit",
        &[],
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let stderr = stderr.join().unwrap();
    // Billed is billed: the files go into place and the run succeeds.
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs"),
        ["succeeded"]
    );
    let clean = scratch.path().join("clean");
    ok(run_with(&db, &clean, &window));
    assert_eq!(tree(&out), tree(&clean));
}

/// A re-run that must update every `tenant_daily` row of `window` while
/// an analyst holds them all (`SELECT … FOR UPDATE`): returns once the run
/// waits on the lock, with the analyst's session (its transaction open).
fn run_behind_an_analysts_row_lock(
    before: &RolledUp,
    window: &[&str],
    stderr: std::process::Stdio,
) -> (postgres::Client, std::process::Child) {
    let (db, out) = (&before.db, &before.out);
    db.exec("UPDATE call_logs SET total_cost_usd = total_cost_usd + 2");
    let mut analyst = db.client();
    analyst
        .batch_execute("BEGIN; SELECT * FROM analytics.tenant_daily FOR UPDATE")
        .unwrap();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("callrollup"))
        .arg("run")
        .args(window)
        .arg("--out")
        .arg(out)
        .env("DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    db.wait_for_lock_wait("callrollup", "the run never waited on the analyst's rows");
    (analyst, child)
}

#[test]
fn sigterm_while_the_write_waits_on_a_row_lock_cancels_it_on_the_server() {
    let window = ["--from", "2026-03-07", "--to", "2026-03-09"];
    let before = RolledUp::new(&window);
    let (mut analyst, child) =
        run_behind_an_analysts_row_lock(&before, &window, std::process::Stdio::piped());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    // The lock is still held: only a cancel on the server frees the run
    // (it used to wait out lock_timeout, and a kill -9 left the ledger
    // `running` and the staged files behind).
    let output =
        crate::util::ends_within(child, 30, "the run did not stop while the lock was held");
    let stderr = crate::util::stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    analyst.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        before.db.rows(
            "SELECT status, coalesce(error, '') LIKE '%stopped by SIGTERM%'
             FROM analytics.rollup_runs ORDER BY started_at"
        ),
        ["succeeded|false", "failed|true"]
    );
    // Nothing staged is left, no journal: as the first run left it.
    before.assert_unchanged("after the cancelled run");
}

#[test]
fn sigint_during_query_removes_its_spill_folder() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let tmp = scratch.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // Paused before the calls are read: the spill folder exists.
    let (mut child, stderr) = spawn_paused_with_stderr(
        Some(&db),
        &[
            "query",
            "SELECT count(*) AS n FROM call_logs",
            "--from",
            "2026-03-05",
            "--to",
            "2026-03-09",
        ],
        "query_read",
        &[("TMPDIR", &tmp)],
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        1,
        "a spill folder"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stopped by SIGINT"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn costs_behind_a_table_lock_stops_on_sigterm_instead_of_waiting_forever() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    run(
        &db,
        &scratch.path().join("reports"),
        &["--from", "2026-03-07", "--to", "2026-03-08"],
    );
    let mut blocker = db.client();
    let mut tx = blocker.transaction().unwrap();
    tx.batch_execute("LOCK TABLE analytics.tenant_daily IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("callrollup"))
        .args(["costs", "--month", "2026-03"])
        .env("DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    db.wait_for_lock_wait("callrollup-costs", "costs never waited on the lock");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = crate::util::ends_within(child, 20, "costs did not stop while the lock was held");
    let stderr = crate::util::stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    // Its session was read-only and is gone: no backend of it waits on.
    tx.rollback().unwrap();
    assert_eq!(
        db.scalar_i64(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'callrollup-costs' AND wait_event_type = 'Lock'",
            db.name
        )),
        0
    );
}

#[test]
fn a_killed_engines_backend_stops_waiting_on_its_lock() {
    let window = ["--from", "2026-03-07", "--to", "2026-03-09"];
    let before = RolledUp::new(&window);
    let (mut analyst, mut child) =
        run_behind_an_analysts_row_lock(&before, &window, std::process::Stdio::null());
    child.kill().unwrap();
    child.wait().unwrap();
    // The server notices the engine is gone (client_connection_check_interval)
    // and ends the waiting statement, its transaction and its locks, long
    // before the 60 s lock timeout.
    let db = &before.db;
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'callrollup'",
        db.name
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while db.scalar_i64(&waiting) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the killed engine's backend still runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    analyst.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn a_late_call_beyond_the_lookback_was_never_seen() {
    // Calls for the last 40 days, all rolled up; then the nightly runs.
    let last =
        (chrono::Utc::now() - chrono::TimeDelta::hours(12)).date_naive() - chrono::Days::new(1);
    let first = last - chrono::Days::new(39);
    let db = crate::util::generated_platform("12", "4000", "40", &last.to_string(), "3");
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    run(
        &db,
        &out,
        &["--from", &first.to_string(), "--to", &last.to_string()],
    );
    // Nothing late: the 31 closed days before the nightly window match.
    let nightly = run(&db, &out, &[]);
    let summary = stdout_of(&nightly);
    assert!(
        summary.contains("drift       none: the 31 closed day(s)"),
        "{summary}"
    );
    // A call arrives for a day 20 days back, beyond the 3-day lookback.
    let late = last - chrono::Days::new(20);
    db.exec(&format!(
        "CREATE TEMPORARY TABLE late AS
           SELECT * FROM call_logs
            WHERE created_at >= '{late} 12:00+00' AND created_at < '{late} 13:00+00'
              AND total_cost_usd IS NOT NULL
            ORDER BY call_id LIMIT 1;
         UPDATE late SET call_log_id = gen_random_uuid(), call_id = 'late-call', total_cost_usd = 1.250000;
         INSERT INTO call_logs SELECT * FROM late;"
    ));
    let nightly = run(&db, &out, &[]);
    let summary = stdout_of(&nightly);
    assert!(
        summary.contains("drift       1 tenant day(s) of"),
        "{summary}"
    );
    assert!(
        summary.contains(
            "rows added, changed or deleted after they were rolled up, beyond the lookback"
        ),
        "{summary}"
    );
    let rerun = summary
        .split('`')
        .find(|s| s.starts_with("callrollup run --from"))
        .unwrap_or_else(|| panic!("no command in {summary}"))
        .to_string();
    // A --tenant run does not check: its gate says so, never "ok".
    let tenant = db.rows("SELECT tenant_id::text FROM tenants ORDER BY 1 LIMIT 1")[0].clone();
    let one = run(&db, &out, &["--fail-on", "drift", "--tenant", &tenant]);
    let summary = stdout_of(&one);
    assert!(
        summary.contains("drift       not checked: a --tenant or shard run"),
        "{summary}"
    );
    assert!(
        summary.contains("gates       drift not checked"),
        "{summary}"
    );
    // The gate makes it exit 3 (the run's data still written).
    let gated = run_with(&db, &out, &["--fail-on", "drift"]);
    assert_fails(&gated, 3, "drift has 1 tenant days");
    // The metrics say it too.
    let metrics = scratch.path().join("metrics.prom");
    run(&db, &out, &["--metrics-file", metrics.to_str().unwrap()]);
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(
        metric(&text, "callrollup_last_run_drift_tenant_days"),
        Some(1.0),
        "{text}"
    );
    // The command it names re-rolls the day, which records the restatement.
    // It names the run's own report folder.
    assert!(
        rerun.ends_with(&format!("--out {}", out.display())),
        "{rerun}"
    );
    let args: Vec<&str> = rerun.split(' ').skip(1).collect();
    ok(db.cmd().args(&args).output().unwrap());
    assert!(db.scalar_i64("SELECT count(*) FROM analytics.restatements") > 0);
    let nightly = run(&db, &out, &["--fail-on", "drift"]);
    assert!(
        stdout_of(&nightly).contains("drift       none"),
        "{}",
        stdout_of(&nightly)
    );
    // Postgres agrees with the summary on the late day, call for call.
    assert_eq!(
        db.scalar_i64(&format!(
            "SELECT sum(calls)::bigint FROM analytics.tenant_daily WHERE day = '{late}'"
        )),
        db.scalar_i64(&format!(
            "SELECT count(*) FROM call_logs c JOIN tenants t USING (tenant_id)
              WHERE (c.created_at AT TIME ZONE t.timezone)::date = '{late}'"
        ))
    );
}
