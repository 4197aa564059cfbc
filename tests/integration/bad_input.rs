//! Bad input gets a one-line error, the documented exit code, and loses
//! nothing: tables, files and the ledger stay as they were.

use std::process::{Command as StdCommand, Stdio};

use crate::util::{stderr_of, stdout_of, tree, TestDb};

const TWO_DAYS: [&str; 6] = ["run", "--from", "2026-03-10", "--to", "2026-03-11", "--out"];

fn tenant_daily(db: &TestDb) -> Vec<String> {
    db.rows("SELECT tenant_id, day, calls, total_cost_usd, run_id FROM analytics.tenant_daily ORDER BY 1, 2")
}

/// A successful run of TWO_DAYS, then new source data for that window.
/// Returns the tables and files as the run left them.
fn first_run_then_new_data(
    db: &TestDb,
    out: &std::path::Path,
) -> (Vec<String>, Vec<(std::path::PathBuf, Vec<u8>)>) {
    db.cmd().args(TWO_DAYS).arg(out).assert().success();
    let before = (tenant_daily(db), tree(out));
    db.exec("UPDATE call_logs SET total_cost_usd = total_cost_usd + 1 WHERE created_at BETWEEN '2026-03-10' AND '2026-03-12'");
    before
}

fn run_fails(db: &TestDb, args: &[&str], code: i32) -> String {
    let output = db.cmd().arg("run").args(args).output().unwrap();
    let err = stderr_of(&output);
    assert_eq!(output.status.code(), Some(code), "run {args:?}: {err}");
    let last = err.lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with("callrollup: error: ") || code == 2,
        "{err}"
    );
    last
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    let out = out.path().to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--from", "2026-03-09", "--to", "2026-03-01", "--out", out],
            "after --to",
        ),
        (
            &["--date", "2026-02-30", "--out", out],
            "not a calendar date",
        ),
        (&["--date", "03/01/2026", "--out", out], "YYYY-MM-DD"),
        (
            &["--date", "2026-03-01", "--tenant", "acme", "--out", out],
            "not a UUID",
        ),
        (&["--date", "2099-01-01", "--out", out], "--allow-partial"),
        (
            &[
                "--date",
                "2026-03-01",
                "--target-schema",
                "Robert'); DROP",
                "--out",
                out,
            ],
            "plain schema name",
        ),
    ];
    for (args, hint) in cases {
        let line = run_fails(&db, args, 2);
        assert!(line.contains(hint), "{args:?}: {line}");
    }
    let output = db.cmd().args(["run", "--frobnicate"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.rollup_runs"),
        0
    );
}

/// `run` with `global_args` against a port where no PostgreSQL listens,
/// through a URL that carries a password.
fn run_against_nothing(global_args: &[&str]) -> std::process::Output {
    TestDb::cmd_without_db()
        .args(global_args)
        .args(["run", "--date", "2026-03-01"])
        .env(
            "DATABASE_URL",
            "postgres://billing:hunter2-secret@127.0.0.1:1/platform",
        )
        .output()
        .unwrap()
}

#[test]
fn unreachable_database_masks_the_password() {
    let output = run_against_nothing(&[]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr_of(&output);
    assert!(!err.contains("hunter2-secret"), "{err}");
    assert!(
        err.contains("postgres://billing:***@127.0.0.1:1/platform"),
        "{err}"
    );
    assert!(err.contains("check --database-url"), "{err}");
}

#[test]
fn missing_engine_schema_says_to_migrate() {
    let db = TestDb::with_platform();
    db.exec(crate::util::PLATFORM_DATA);
    let line = run_fails(&db, &["--date", "2026-03-10"], 2);
    assert!(line.contains("run `callrollup migrate`"), "{line}");
}

#[test]
fn missing_or_mistyped_source_column_names_table_and_column() {
    let db = TestDb::with_fixture();
    db.exec("ALTER TABLE call_logs DROP COLUMN outcome");
    let line = run_fails(&db, &["--date", "2026-03-10"], 2);
    assert!(
        line.contains("public.call_logs") && line.contains("outcome is missing"),
        "{line}"
    );

    let db = TestDb::with_fixture();
    db.exec("ALTER TABLE system_errors ALTER COLUMN resolved TYPE text");
    let line = run_fails(&db, &["--date", "2026-03-10"], 2);
    assert!(
        line.contains("public.system_errors") && line.contains("resolved has type text"),
        "{line}"
    );
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.rollup_runs"),
        0
    );
}

#[test]
fn missing_duration_seconds_is_allowed() {
    let db = TestDb::with_fixture();
    db.exec("ALTER TABLE call_logs DROP COLUMN duration_seconds");
    let out = tempfile::tempdir().unwrap();
    db.cmd()
        .args(["run", "--date", "2026-03-10", "--out"])
        .arg(out.path())
        .assert()
        .success();
    assert_eq!(
        db.scalar_i64("SELECT sum(billable_seconds)::bigint FROM analytics.tenant_daily"),
        0
    );
}

#[test]
fn unwritable_out_dir_changes_nothing() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let blocker = scratch.path().join("a-file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let out = blocker.join("reports");
    let line = run_fails(
        &db,
        &["--date", "2026-03-10", "--out", out.to_str().unwrap()],
        2,
    );
    assert!(
        line.contains("--out") && line.contains("not writable"),
        "{line}"
    );
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
fn second_concurrent_run_exits_4() {
    let db = TestDb::with_fixture();
    let mut holder = db.client();
    holder
        .execute(
            "SELECT pg_advisory_lock(hashtext('callrollup:' || 'analytics'))",
            &[],
        )
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let line = run_fails(
        &db,
        &[
            "--date",
            "2026-03-10",
            "--out",
            out.path().to_str().unwrap(),
        ],
        4,
    );
    assert!(
        line.contains("another callrollup run holds the lock"),
        "{line}"
    );
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.rollup_runs"),
        0
    );
    drop(holder);
    db.cmd()
        .args(["run", "--date", "2026-03-10", "--out"])
        .arg(out.path())
        .assert()
        .success();
}

#[test]
fn failed_write_back_leaves_tables_files_and_ledger_consistent() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    let args = TWO_DAYS;
    let (tables_before, files_before) = first_run_then_new_data(&db, out.path());

    // A target that rejects the write midway (the new costs change rows of
    // tenant_daily, which the run updates in place).
    db.exec("CREATE FUNCTION analytics.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full (simulated)'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON analytics.tenant_daily FOR EACH ROW EXECUTE FUNCTION analytics.refuse();");
    let output = db.cmd().args(args).arg(out.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("disk full (simulated)"));
    assert_eq!(tenant_daily(&db), tables_before);
    assert_eq!(
        tree(out.path()),
        files_before,
        "no report changed and no temporary file left"
    );
    assert_eq!(
        db.rows("SELECT status, coalesce(error LIKE '%disk full (simulated)%', false) FROM analytics.rollup_runs ORDER BY started_at"),
        ["succeeded|false", "failed|true"]
    );

    db.exec("DROP TRIGGER refuse ON analytics.tenant_daily");
    db.cmd().args(args).arg(out.path()).assert().success();
    assert_ne!(
        tree(out.path()),
        files_before,
        "the re-run wrote the new figures"
    );
}

#[test]
fn run_killed_midway_keeps_previous_results_and_rerun_repairs() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    let args = TWO_DAYS;
    let (tables_before, files_before) = first_run_then_new_data(&db, out.path());
    // Hold the summary table so the run blocks inside its write transaction, then kill it there.
    let mut blocker = db.client();
    let mut tx = blocker.transaction().unwrap();
    tx.batch_execute("LOCK TABLE analytics.tenant_daily IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("callrollup"))
        .args(args)
        .arg(out.path())
        .env("DATABASE_URL", &db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    db.wait_for_lock_wait("callrollup", "the run never reached its write transaction");
    child.kill().unwrap();
    child.wait().unwrap();
    tx.rollback().unwrap();
    drop(blocker);

    assert_eq!(tenant_daily(&db), tables_before);
    let visible: Vec<_> = tree(out.path())
        .into_iter()
        .filter(|(p, _)| !p.file_name().unwrap().to_str().unwrap().starts_with('.'))
        .collect();
    assert_eq!(visible, files_before, "reports are the previous run's");
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs ORDER BY started_at"),
        ["succeeded", "running"]
    );

    db.cmd().args(args).arg(out.path()).assert().success();
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs ORDER BY started_at"),
        ["succeeded", "failed", "succeeded"],
        "the killed run is marked failed by the next one"
    );
    assert!(
        tree(out.path()).iter().all(|(p, _)| !p
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with('.')),
        "the re-run cleaned up the killed run's temporary files"
    );
    assert_ne!(tree(out.path()), files_before);
}

#[test]
fn json_log_lines_for_log_collectors() {
    let output = run_against_nothing(&["--log-format", "json"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr_of(&output);
    assert!(!err.contains("hunter2-secret"));
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "error");
    assert_eq!(last["exit_code"], 2);
    assert!(last["msg"].as_str().unwrap().contains("cannot connect"));
}

#[test]
fn clap_errors_use_the_engines_one_line_form() {
    let cases: [(&[&str], &str, &str); 3] = [
        (
            &["run", "--frobnicate"],
            "unexpected argument '--frobnicate' found",
            "see `callrollup run --help`",
        ),
        (
            &["costs", "--by", "week"],
            "invalid value 'week' for '--by <BY>'",
            "see `callrollup costs --help`",
        ),
        (
            &["costs", "--month"],
            "a value is required for '--month <MONTH>'",
            "see `callrollup costs --help`",
        ),
    ];
    for (args, what, hint) in cases {
        let output = TestDb::cmd_without_db().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = stderr_of(&output);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.starts_with("callrollup: error: ") && err.contains(what) && err.contains(hint),
            "{args:?}: {err}"
        );

        // The same as one JSON object, wherever --log-format is given.
        for json_args in [
            [&["--log-format", "json"][..], args].concat(),
            [args, &["--log-format=json"][..]].concat(),
        ] {
            let output = TestDb::cmd_without_db().args(&json_args).output().unwrap();
            assert_eq!(output.status.code(), Some(2), "{json_args:?}");
            let err = stderr_of(&output);
            assert_eq!(err.lines().count(), 1, "one line: {err}");
            let line: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
            assert_eq!(line["level"], "error");
            assert_eq!(line["exit_code"], 2);
            let msg = line["msg"].as_str().unwrap();
            assert!(msg.contains(what) && msg.contains(hint), "{msg}");
        }
    }
    // Help and version are no errors.
    for args in [&["--help"][..], &["costs", "--help"], &["--version"]] {
        let output = TestDb::cmd_without_db().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(!stdout_of(&output).is_empty(), "{args:?}");
    }
}
