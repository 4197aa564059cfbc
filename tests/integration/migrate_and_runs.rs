//! `callrollup migrate` and `callrollup runs`.

use crate::util::{stderr_of, stdout_of, TestDb};

#[test]
fn migrate_is_idempotent_and_tracked() {
    let db = TestDb::with_platform();
    let first = db.cmd().arg("migrate").output().unwrap();
    assert!(first.status.success());
    assert!(stdout_of(&first).contains("applied 0001_summary_tables.sql"));
    let second = db.cmd().arg("migrate").output().unwrap();
    assert!(second.status.success());
    assert_eq!(stdout_of(&second), "schema analytics is up to date\n");
    assert_eq!(
        db.rows("SELECT version, name, length(checksum) FROM analytics.schema_migrations"),
        [
            "1|0001_summary_tables.sql|64",
            "2|0002_run_tenant_shard.sql|64",
            "3|0003_run_source.sql|64",
            "4|0004_findings_day_index.sql|64",
            "5|0005_restatements.sql|64",
            "6|0006_history_append_only.sql|64"
        ]
    );
}

#[test]
fn migrate_into_another_schema() {
    let db = TestDb::with_platform();
    db.exec(crate::util::PLATFORM_DATA);
    db.cmd()
        .args(["migrate", "--target-schema", "billing_rollups"])
        .assert()
        .success();
    let out = tempfile::tempdir().unwrap();
    db.cmd()
        .args([
            "run",
            "--date",
            "2026-03-10",
            "--target-schema",
            "billing_rollups",
            "--out",
        ])
        .arg(out.path())
        .assert()
        .success();
    assert!(db.scalar_i64("SELECT count(*) FROM billing_rollups.tenant_daily") > 0);
}

#[test]
fn changed_applied_migration_is_refused() {
    let db = TestDb::with_fixture();
    db.exec("UPDATE analytics.schema_migrations SET checksum = 'edited' WHERE version = 1");
    for args in [&["migrate"][..], &["run", "--date", "2026-03-10"][..]] {
        let output = db.cmd().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr_of(&output).contains("was changed after it was applied"),
            "{}",
            stderr_of(&output)
        );
    }
}

#[test]
fn unknown_newer_migration_is_refused() {
    let db = TestDb::with_fixture();
    db.exec("INSERT INTO analytics.schema_migrations (version, name, checksum) VALUES (99, '0099_future.sql', 'x')");
    let output = db
        .cmd()
        .args(["run", "--date", "2026-03-10"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("upgrade callrollup"));
}

#[test]
fn runs_lists_the_ledger_newest_first() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    for date in ["2026-03-10", "2026-03-11"] {
        db.cmd()
            .args(["run", "--date", date, "--out"])
            .arg(out.path())
            .assert()
            .success();
    }
    let table = db.cmd().arg("runs").output().unwrap();
    assert!(table.status.success());
    let text = stdout_of(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("run_id"), "{text}");
    assert!(
        lines[1].contains("2026-03-11..2026-03-11") && lines[1].contains("succeeded"),
        "{text}"
    );
    assert!(lines[2].contains("2026-03-10..2026-03-10"), "{text}");

    let json = db
        .cmd()
        .args(["runs", "--format", "json"])
        .output()
        .unwrap();
    let document: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(document["format_version"], 2);
    let runs = document["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["window_from"], "2026-03-11");
    assert_eq!(runs[0]["status"], "succeeded");
    let calls = db.scalar_i64(
        "SELECT sum(calls)::bigint FROM analytics.tenant_daily WHERE day = '2026-03-11'",
    );
    assert!(
        runs[0]["source_calls"].as_i64().unwrap() >= calls,
        "the UTC range holds at least the day's calls"
    );
    let source = runs[0]["source"].as_str().unwrap();
    assert!(
        source.starts_with("postgres://") && source.ends_with("(schema public)"),
        "the ledger names the database it read: {source}"
    );
    assert_eq!(runs[0]["selection"], "all tenants (platform rows included)");
    assert!(
        lines[1].contains("all tenants") && lines[1].contains("postgres://"),
        "{text}"
    );
}

#[test]
fn the_ledger_names_the_source_without_its_password() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    // Trust authentication takes any password, so the URL can carry one.
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_password(Some("hunter2-secret")).unwrap();
    db.cmd()
        .env("DATABASE_URL", url.as_str())
        .args(["run", "--date", "2026-03-10", "--out"])
        .arg(out.path())
        .assert()
        .success();
    let runs = db
        .cmd()
        .env("DATABASE_URL", url.as_str())
        .args(["runs", "--format", "json"])
        .output()
        .unwrap();
    let text = stdout_of(&runs);
    assert!(text.contains("postgres://postgres:***@"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(db
        .rows("SELECT source FROM analytics.rollup_runs WHERE source LIKE '%hunter2%'")
        .is_empty());
}

#[test]
fn run_refuses_an_out_of_date_schema_until_migrate() {
    let db = TestDb::with_fixture();
    // The schema as an older callrollup left it: migration 2 not applied.
    db.exec(
        "DELETE FROM analytics.schema_migrations WHERE version = 2;
             ALTER TABLE analytics.rollup_runs DROP COLUMN tenant_shard",
    );
    let out = tempfile::tempdir().unwrap();
    let output = db
        .cmd()
        .args(["run", "--date", "2026-03-10", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = stderr_of(&output);
    assert!(
        err.contains(
            "out of date (1 pending: 0002_run_tenant_shard.sql); run `callrollup migrate`"
        ),
        "{err}"
    );
    let migrate = db.cmd().arg("migrate").output().unwrap();
    assert_eq!(
        stdout_of(&migrate),
        "applied 0002_run_tenant_shard.sql\nschema analytics is up to date (1 applied)\n"
    );
    db.cmd()
        .args(["run", "--date", "2026-03-10", "--out"])
        .arg(out.path())
        .assert()
        .success();
}

/// The ledger's `finished_at` took `now()`, the start of the write
/// transaction that opened with the run: every run looked 0.0 s long, and a
/// run paused before its commit was recorded as finishing early.
#[test]
fn runs_said_every_run_took_no_time_because_finished_at_was_the_transaction_start() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out");
    let resume = scratch.path().join("resume");
    let (mut child, stderr) = crate::util::spawn_paused_with_stderr(
        Some(&db),
        &[
            "run",
            "--from",
            "2026-03-05",
            "--to",
            "2026-03-06",
            "--out",
            out.to_str().unwrap(),
        ],
        "before_commit",
        &[("CALLROLLUP_TEST_RESUME_FILE", &resume)],
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::fs::write(&resume, b"").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", stderr.join().unwrap());
    let took_ms = db.scalar_i64(
        "SELECT (extract(epoch FROM finished_at - started_at) * 1000)::bigint
         FROM analytics.rollup_runs WHERE status = 'succeeded'",
    );
    assert!(took_ms >= 1500, "the run took {took_ms} ms by the ledger");
}
